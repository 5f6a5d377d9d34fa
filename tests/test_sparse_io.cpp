// Pruned weights as users meet them in files: `edgepack inspect` on sparse tensors, and
// pruned models written as .onnx / .safetensors checked against ONNX Runtime and the
// safetensors package (scripts/xcheck/pruned_vs_ort.py). The pruning here is a small
// magnitude pruner in the test (prune_magnitude), standing in for the prune pass.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <numeric>

#include <nlohmann/json.hpp>

#include "compressor/dataset.h"
#include "formats/epk.h"
#include "formats/model_io.h"
#include "ir/encoding.h"
#include "ir/sparse.h"
#include "runtime-check/npy.h"
#include "support.h"

using namespace ep;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// The reduction axis of a weight read by `op` (the stored orientation of encoding.h):
// 0 for a MatMul [K, N] weight or Gemm transB = 0, 1 for Gemm transB = 1 or a Conv weight.
std::optional<uint8_t> weight_axis(const Graph& g, const std::string& name) {
    for (const auto& n : g.nodes) {
        if (n.inputs.size() < 2 || n.inputs[1] != name || !n.domain.empty()) continue;
        if (n.op_type == "MatMul") return uint8_t{0};
        if (n.op_type == "Gemm") return static_cast<uint8_t>(n.attr_int("transB", 0) ? 1 : 0);
        if (n.op_type == "Conv") return uint8_t{1};
    }
    return std::nullopt;
}

// Prunes `t` by magnitude in its stored orientation (rows = output channels, columns along
// `axis`, the reduction): n:m keeps the n largest |w| of every m consecutive columns (ties:
// the earlier), else each row keeps its ceil(cols / 2) largest. The pruned weights become 0.0
// and the tensor is stored sparse when that is smaller than dense (the prune pass's storage
// "auto"), else dense. A test helper standing in for the prune pass.
Tensor prune_magnitude(const Tensor& t, uint8_t axis, Sparsity layout) {
    Encoding plain;
    plain.axis = axis;
    auto dims = encoded_dims(plain, t.shape, t.name);
    const int64_t rows = dims.rows, cols = dims.cols, words = mask_words(cols);
    std::vector<float> v = t.to_floats();
    auto at = [&](int64_t r, int64_t c) -> float& {
        return v[static_cast<size_t>(axis == 0 ? c * rows + r : r * cols + c)];
    };
    std::vector<uint64_t> mask(static_cast<size_t>(rows * words), 0);
    const int64_t span = layout.layout == SparseLayout::NM ? layout.m : cols;
    const int64_t keep = layout.layout == SparseLayout::NM ? layout.n : (cols + 1) / 2;
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c0 = 0; c0 < cols; c0 += span) {
            std::vector<int64_t> order(static_cast<size_t>(span));
            std::iota(order.begin(), order.end(), c0);
            std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
                return std::fabs(at(r, a)) > std::fabs(at(r, b));
            });
            for (size_t i = 0; i < order.size(); ++i) {
                int64_t c = order[i];
                if (static_cast<int64_t>(i) < keep)
                    mask[static_cast<size_t>(r * words + c / 64)] |= uint64_t{1} << (c % 64);
                else
                    at(r, c) = 0.0f;
            }
        }
    Tensor dense = make_f32_tensor(t.name, t.shape, v);
    Tensor sparse = sparsify_tensor(dense, layout, mask, axis);
    return sparse.data.size() < dense.data.size() ? sparse : dense;
}

const Sparsity kBitmask{SparseLayout::Bitmask, 0, 0, 0};
const Sparsity k24{SparseLayout::NM, 2, 4, 0};

// Every MatMul / Gemm / Conv weight of `m` pruned by magnitude, alternately half of each row
// (bitmask) and 2:4 (where the reduction length allows), so both layouts meet both
// orientations. Returns the names pruned.
std::vector<std::string> prune_model(Model& m) {
    std::vector<std::string> names;
    for (auto& t : m.graph.initializers) {
        auto axis = weight_axis(m.graph, t.name);
        if (!axis || t.dtype != DType::F32 || t.shape.size() < 2) continue;
        Encoding plain;
        plain.axis = *axis;
        auto dims = encoded_dims(plain, t.shape, t.name);
        bool nm = names.size() % 2 == 1 && dims.cols % 4 == 0;
        t = prune_magnitude(t, *axis, nm ? k24 : kBitmask);
        names.push_back(t.name);
    }
    return names;
}

fs::path mnist_model() {
    return test::shared_models() / "mnist" / "mnist-cnn.onnx";
}
fs::path stories_model() {
    return test::shared_models() / "stories260k" / "model.onnx";
}
fs::path data_dir() {
    return test::source_dir() / ".cache" / "data";
}

// The first `n` rows of a tensor's first axis.
Tensor first_rows(const Tensor& t, int64_t n) {
    Tensor out = t;
    n = std::min(n, t.shape[0]);
    out.shape[0] = n;
    auto bytes = t.data.bytes();
    size_t keep = bytes.size() / static_cast<size_t>(t.shape[0]) * static_cast<size_t>(n);
    out.data = TensorData::owned(std::vector<std::byte>(bytes.begin(), bytes.begin() + keep));
    return out;
}

// The weights of `m` alone (a checkpoint: safetensors holds no graph).
Model weights_only(const Model& m) {
    Model w;
    w.format = SourceFormat::Safetensors;
    w.graph.initializers = m.graph.initializers;
    return w;
}

}  // namespace

TEST_CASE("inspect shows each sparse tensor's sparsity, pattern, encoding and size, and totals",
          "[sparse][inspect][real]") {
    EP_REQUIRE_FILE_OR_SKIP(mnist_model());
    test::TempDir dir;
    Model m = load_model(mnist_model());
    auto pruned = prune_model(m);
    // conv1 and fc1 half of each row, conv2 (288 columns) and fc2 (128) 2:4; conv1's 9
    // columns are too short for the mask to pay: it stays dense, its zeros stored.
    REQUIRE(pruned ==
            std::vector<std::string>{"conv1.weight", "conv2.weight", "fc1.weight", "fc2.weight"});
    // The .onnx holds the float weights dense (a quantized .onnx needs onnx.quantized).
    save_model(m, dir / "pruned.onnx");
    // In the .epk fc1 is quantized too: int4 g32 codes stored with its bitmask.
    for (auto& t : m.graph.initializers)
        if (t.name == "fc1.weight") {
            Tensor dense = densify_tensor(t);
            Encoding e = *encoding_from_name("int4g32");
            Tensor q = quantize_tensor_rtn(dense, e);
            t = sparsify_tensor(q, kBitmask, tensor_mask(t));
        }
    save_model(m, dir / "pruned.epk");

    auto r = test::run_edgepack({"inspect", (dir / "pruned.epk").string(), "--json", "--tensors"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    json j = json::parse(r.out);
    const json& sp = j["sparse"];
    REQUIRE(sp["tensors"] == 3);
    REQUIRE(sp["layers"].size() == 3);
    uint64_t weights = 0, kept = 0, bytes = 0, dense = 0;
    for (const auto& l : sp["layers"]) {
        INFO(l.dump());
        weights += [&] {
            uint64_t n = 1;
            for (const auto& d : l["shape"]) n *= d.get<uint64_t>();
            return n;
        }();
        kept += l["kept"].get<uint64_t>();
        bytes += l["bytes"].get<uint64_t>();
        dense += l["dense_bytes"].get<uint64_t>();
        CHECK(l["bytes"].get<uint64_t>() < l["dense_bytes"].get<uint64_t>());
    }
    CHECK(sp["weights"] == weights);
    CHECK(sp["kept"] == kept);
    CHECK(sp["bytes"] == bytes);
    CHECK(sp["dense_bytes"] == dense);
    CHECK(sp["sparsity"].get<double>() == Approx(1.0 - double(kept) / double(weights)));
    // conv2: [64, 32, 3, 3] 2:4 over 288 columns: a mask of 5 words a row and half the f32s.
    const json& conv2 = sp["layers"][0];
    CHECK(conv2["name"] == "conv2.weight");
    CHECK(conv2["pattern"] == "2:4");
    CHECK(conv2["encoding"] == "2:4");
    CHECK(conv2["axis"] == 1);
    CHECK(conv2["kept"] == 64 * 144);
    CHECK(conv2["sparsity"].get<double>() == 0.5);
    CHECK(conv2["dense_bytes"] == 64 * 288 * 4);
    CHECK(conv2["bytes"] == 64 * 5 * 8 + 64 * 144 * 4);
    // fc1: [128, 3136] int4g32, 1568 kept a row. Dense: 128 rows x 98 blocks of 18 bytes;
    // sparse: the mask (49 words a row), row_start, the 2-byte scales, the kept nibbles.
    const json& fc1 = sp["layers"][1];
    CHECK(fc1["name"] == "fc1.weight");
    CHECK(fc1["pattern"] == "unstructured");
    CHECK(fc1["encoding"] == "int4g32+bitmask");
    CHECK(fc1["axis"] == 1);
    CHECK(fc1["kept"] == 128 * 1568);
    CHECK(fc1["sparsity"].get<double>() == 0.5);
    CHECK(fc1["dense_bytes"] == 128 * 98 * 18);
    CHECK(fc1["bytes"] == 128 * 49 * 8 + 129 * 8 + 128 * 98 * 2 + 128 * 1568 / 2);
    CHECK(sp["layers"][2]["name"] == "fc2.weight");
    // --tensors: conv1 is dense, 4 of its 9 weights a row zero.
    for (const auto& t : j["tensors"])
        if (t["name"] == "conv1.weight") {
            CHECK(t["encoding"] == "f32");
            CHECK(t["zero_fraction"].get<double>() == Approx(4.0 / 9.0));
        }
    // --tensors: zero_fraction of a sparse tensor is its pruned fraction.
    for (const auto& t : j["tensors"])
        if (t["name"] == "fc2.weight") CHECK(t["zero_fraction"].get<double>() == 0.5);

    // The text says the same.
    auto text = test::run_edgepack({"inspect", (dir / "pruned.epk").string()});
    REQUIRE(text.exit_code == 0);
    CHECK_THAT(text.out, Catch::Contains("sparse      "));
    CHECK_THAT(text.out,
               Catch::Contains("210,560 of 421,120 weights pruned (50.00%) in 3 tensors"));
    CHECK_THAT(text.out, Catch::Contains("  int4g32+bitmask 401,408 in 1 tensors"));
    CHECK_THAT(text.out, Catch::Contains("in 3 tensors"));
    CHECK_THAT(text.out, Catch::Contains(
                             " 50.00% unstructured int4g32+bitmask 172.51 KiB (dense 220.50 KiB)  "
                             "fc1.weight [128, 3136]"));

    // The .onnx holds the same weights dense: no sparse tensors, the zeros stored.
    auto onnx =
        test::run_edgepack({"inspect", (dir / "pruned.onnx").string(), "--json", "--tensors"});
    REQUIRE(onnx.exit_code == 0);
    json o = json::parse(onnx.out);
    CHECK(o["sparse"]["tensors"] == 0);
    CHECK(o["sparse"]["layers"].empty());
    for (const auto& t : o["tensors"])
        if (t["name"] == "conv2.weight") CHECK(t["zero_fraction"].get<double>() >= 0.5);
    CHECK_THAT(test::run_edgepack({"inspect", (dir / "pruned.onnx").string()}).out,
               !Catch::Contains("sparse      "));
}

TEST_CASE(
    "a pruned model written as .onnx runs in ONNX Runtime as our runtime runs its sparse "
    ".epk, within 1e-4, and its .safetensors is dense with the same values",
    "[sparse][xcheck][real]") {
    struct Case {
        const char* label;
        fs::path model;
        std::string input;   // the model's input name
        std::string output;  // its output name
        fs::path data_file;  // real inputs (scripts/make_data.sh)
        std::function<Tensor()> data;
    };
    std::vector<Case> cases = {
        {"mnist", mnist_model(), "input", "output", data_dir() / "mnist-test" / "batch_00.npz",
         [] {
             auto batch = read_npz(data_dir() / "mnist-test" / "batch_00.npz");
             REQUIRE(batch.size() == 1);
             REQUIRE(batch[0].first == "input");
             return first_rows(batch[0].second, 100);
         }},
        {"stories260k", stories_model(), "input_ids", "logits", data_dir() / "stories260k-eval.npy",
         [] { return first_rows(read_npy(data_dir() / "stories260k-eval.npy"), 1); }},
    };
    for (const auto& c : cases) {
        DYNAMIC_SECTION(c.label) {
            EP_REQUIRE_FILE_OR_CONTINUE(c.model);
            EP_REQUIRE_FILE_OR_CONTINUE(c.data_file);
            test::TempDir dir;
            Model m = load_model(c.model);
            auto pruned = prune_model(m);
            REQUIRE(pruned.size() >= 4);
            save_model(m, dir / "pruned.epk");
            save_model(m, dir / "pruned.onnx");
            save_model(weights_only(m), dir / "pruned.safetensors");
            // The .epk keeps every pruned weight sparse.
            Model back = load_model(dir / "pruned.epk");
            size_t sparse = 0, stored_sparse = 0;
            for (const auto& t : back.graph.initializers) sparse += t.encoding.is_sparse();
            for (const auto& t : m.graph.initializers) stored_sparse += t.encoding.is_sparse();
            CHECK(sparse == stored_sparse);
            CHECK(sparse >= pruned.size() - 1);

            write_npy(c.data(), dir / "input.npy");
            auto run = test::run_edgepack({"run", (dir / "pruned.epk").string(), "--input",
                                           c.input + "=" + (dir / "input.npy").string(), "--out",
                                           (dir / "ours").string(), "--quiet"});
            INFO(run.err);
            REQUIRE(run.exit_code == 0);
            auto ort = test::run_oracle(
                "pruned_vs_ort.py",
                {(dir / "pruned.onnx").string(), "--input",
                 c.input + "=" + (dir / "input.npy").string(), "--ours",
                 c.output + "=" + (dir / "ours" / (c.output + ".npy")).string(), "--atol", "1e-4",
                 "--safetensors", (dir / "pruned.safetensors").string()});
            INFO(ort.out << ort.err);
            REQUIRE(ort.exit_code == 0);
            json j = json::parse(ort.out);
            CHECK(j["checker"] == "full_check passed");
            CHECK(j["outputs"][c.output]["max_abs_diff"].get<double>() <= 1e-4);
            CHECK(j["safetensors"]["mismatches"].empty());
            // The ONNX file stores the pruned weights' zeros: at least 4 in 9 of conv1,
            // half of every 2:4 weight.
            for (const auto& name : pruned) {
                INFO(name);
                CHECK(j["zero_fraction"][name].get<double>() >= 4.0 / 9.0);
            }
        }
    }
}
