// One-node cases written by scripts/xcheck/op_cases.py (one group at a time) run through
// rt::Executor and compared with their oracle's outputs (ONNX Runtime unless the case
// says otherwise), each run at 1 and 2 threads, which must give the same bytes.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "formats/model_io.h"
#include "op_model.h"
#include "runtime-check/executor.h"
#include "runtime-check/npy.h"
#include "support.h"

namespace ep::test {

// Every element as double; 4-bit types unpacked (low nibble first).
inline std::vector<double> as_doubles(const Tensor& t) {
    const std::byte* p = t.data.bytes().data();
    std::vector<double> v(static_cast<size_t>(t.element_count()));
    for (size_t i = 0; i < v.size(); ++i) {
        auto rd = [&](auto tag) {
            decltype(tag) x;
            std::memcpy(&x, p + i * sizeof(x), sizeof(x));
            return static_cast<double>(x);
        };
        switch (t.dtype) {
            case DType::F32:
                v[i] = rd(float{});
                break;
            case DType::F64:
                v[i] = rd(double{});
                break;
            case DType::F16:
                v[i] = half_to_float(static_cast<uint16_t>(rd(uint16_t{})));
                break;
            case DType::I8:
                v[i] = rd(int8_t{});
                break;
            case DType::U8:
                v[i] = rd(uint8_t{});
                break;
            case DType::I16:
                v[i] = rd(int16_t{});
                break;
            case DType::U16:
                v[i] = rd(uint16_t{});
                break;
            case DType::I32:
                v[i] = rd(int32_t{});
                break;
            case DType::I64:
                v[i] = rd(int64_t{});
                break;
            case DType::U4:
            case DType::I4: {
                int nib = (static_cast<uint8_t>(p[i / 2]) >> ((i % 2) * 4)) & 0xF;
                v[i] = t.dtype == DType::I4 ? ((nib ^ 8) - 8) : nib;
                break;
            }
            default:
                FAIL("unexpected dtype " << dtype_name(t.dtype));
        }
    }
    return v;
}

// The dtype an expected .npy holds for our output dtype (4-bit arrive as 8-bit).
inline DType npy_dtype_for(DType ours) {
    if (ours == DType::I4) return DType::I8;
    if (ours == DType::U4) return DType::U8;
    return ours;
}

// Runs every case of one op_cases.py group; returns how many were checked.
inline int check_op_cases(const std::string& group) {
    test::TempDir dir;
    auto gen = test::run_oracle("op_cases.py", {dir.path().string(), "--group", group});
    INFO(gen.out << gen.err);
    REQUIRE(gen.exit_code == 0);
    std::vector<std::filesystem::path> cases;
    for (const auto& e : std::filesystem::directory_iterator(dir.path()))
        if (e.is_directory()) cases.push_back(e.path());
    std::sort(cases.begin(), cases.end());
    for (const auto& c : cases) {
        INFO("case " << c.filename().string()
                     << " (regenerate: scripts/xcheck/op_cases.py DIR --group " << group << ")");
        auto meta = nlohmann::json::parse(test::read_file(c / "case.json"));
        Model model = load_model(c / "model.onnx");
        rt::NamedTensors feeds;
        for (size_t i = 0; i < meta["inputs"].size(); ++i)
            feeds.emplace_back(meta["inputs"][i].get<std::string>(),
                               read_npy(c / ("input_" + std::to_string(i) + ".npy")));
        rt::Executor one(model, rt::ExecOptions{1});
        rt::Executor two(model, rt::ExecOptions{2});
        rt::NamedTensors got = one.run(feeds), got2 = two.run(feeds);
        REQUIRE(got.size() == meta["outputs"].size());
        const double atol = meta["atol"], rtol = meta["rtol"], int_tol = meta["int_tol"];
        for (size_t i = 0; i < got.size(); ++i) {
            const Tensor& y = got[i].second;
            INFO("output " << got[i].first << " " << dtype_name(y.dtype) << " "
                           << shape_string(y.shape));
            CHECK(test::same_bytes(y, got2[i].second));
            Tensor want = read_npy(c / ("expected_" + std::to_string(i) + ".npy"));
            CHECK(npy_dtype_for(y.dtype) == want.dtype);
            CHECK(y.shape == want.shape);
            // Nothing to compare in an empty output (a Loop's scan output after 0 trips).
            if (y.element_count() != want.element_count() || y.element_count() == 0) continue;
            std::vector<double> a = as_doubles(y), b = as_doubles(want);
            bool integral = traits(want.dtype).kind != DTypeKind::Float;
            double worst = 0;
            size_t at = 0;
            for (size_t k = 0; k < a.size(); ++k) {
                double tol = integral ? int_tol : atol + rtol * std::abs(b[k]);
                double excess = std::abs(a[k] - b[k]) - tol;
                if (excess > worst || std::isnan(a[k]) != std::isnan(b[k])) {
                    worst = std::isnan(excess) ? 1e300 : excess;
                    at = k;
                }
            }
            INFO("element " << at << ": got " << a[at] << ", expected " << b[at]);
            CHECK(worst <= 0);
        }
    }
    return static_cast<int>(cases.size());
}

}  // namespace ep::test
