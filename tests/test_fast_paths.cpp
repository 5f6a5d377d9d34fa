// The runtime's fast paths for data movement, pooling and in-place Relu against plain
// index arithmetic written here, on awkward sizes (1, primes, one vector of 8 floats
// -1/+0/+1, rows as narrow as one element), bit for bit, at 1, 2 and 3 threads:
//  - Transpose, Concat, Split, Expand, Slice: copies, so exact;
//  - MaxPool 2x2 stride 2 (the AVX2 row kernel): the same comparisons as the definition,
//    acc = first element, then acc = v > acc ? v : acc, so NaN and -0 behave alike;
//  - Relu run in place by the executor when its input is not read afterwards: the same
//    bytes as a Relu that allocates, the caller's feeds untouched, fetched inputs intact.
#include <cmath>
#include <cstring>
#include <limits>

#include "op_model.h"
#include "support.h"

using namespace ep;
using ep::test::run_threads;
using test::OneNode;

namespace {

std::vector<int64_t> strides_of(const std::vector<int64_t>& shape) {
    std::vector<int64_t> s(shape.size(), 1);
    for (size_t i = shape.size(); i-- > 1;) s[i - 1] = s[i] * shape[i];
    return s;
}

int64_t count_of(const std::vector<int64_t>& shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
}

// out[idx] = in[source(idx)] for every index of `out_shape`, as a float tensor.
template <typename Fn>
Tensor gather_reference(const Tensor& in, const std::vector<int64_t>& out_shape, Fn source) {
    auto x = in.values<float>();
    std::vector<float> v(static_cast<size_t>(count_of(out_shape)));
    std::vector<int64_t> idx(out_shape.size(), 0);
    for (size_t i = 0; i < v.size(); ++i) {
        v[i] = x[static_cast<size_t>(source(idx))];
        for (size_t d = idx.size(); d-- > 0;) {
            if (++idx[d] < out_shape[d]) break;
            idx[d] = 0;
        }
    }
    return make_f32_tensor("", out_shape, v);
}

int64_t offset(const std::vector<int64_t>& idx, const std::vector<int64_t>& strides) {
    int64_t o = 0;
    for (size_t d = 0; d < idx.size(); ++d) o += idx[d] * strides[d];
    return o;
}

void require_same(const Tensor& got, const Tensor& want) {
    REQUIRE(got.shape == want.shape);
    auto g = got.values<float>(), w = want.values<float>();
    for (size_t i = 0; i < g.size(); ++i)
        if (std::memcmp(&g[i], &w[i], sizeof(float)) != 0) {
            INFO("element " << i << ": got " << g[i] << ", want " << w[i]);
            REQUIRE(std::memcmp(&g[i], &w[i], sizeof(float)) == 0);
        }
}

Tensor i64_tensor(std::vector<int64_t> v) {
    Tensor t;
    t.dtype = DType::I64;
    t.shape = {static_cast<int64_t>(v.size())};
    std::vector<std::byte> bytes(v.size() * sizeof(int64_t));
    std::memcpy(bytes.data(), v.data(), bytes.size());
    t.data = TensorData::owned(std::move(bytes));
    return t;
}

}  // namespace

TEST_CASE("Transpose moves every element for any permutation and awkward sizes",
          "[kernels][copy]") {
    const int64_t n = GENERATE(1, 3, 7, 8, 9, 64, 65);
    struct Case {
        std::vector<int64_t> shape, perm;
    };
    const auto c = GENERATE_COPY(values<Case>({
        {{n, 5}, {1, 0}},
        {{2, n, 3}, {0, 2, 1}},
        {{1, n, 8, 8}, {0, 2, 1, 3}},
        {{1, n, 4, 1, 8}, {0, 2, 3, 1, 4}},
        {{1, 8, n, 8}, {0, 1, 3, 2}},
        {{3, 1, n, 2}, {3, 2, 1, 0}},
    }));
    INFO("Transpose " << shape_string(c.shape) << " perm " << shape_string(c.perm));
    Tensor x = test::random_f32(c.shape, static_cast<uint32_t>(n * 31 + c.shape.size()));
    OneNode node;
    node.op_type = "Transpose";
    node.feeds = {{"x", x}};
    node.inputs = {"x"};
    node.attributes = {test::ints_attr("perm", c.perm)};
    std::vector<int64_t> out_shape;
    for (int64_t p : c.perm) out_shape.push_back(c.shape[static_cast<size_t>(p)]);
    const auto in_strides = strides_of(c.shape);
    require_same(run_threads(node),
                 gather_reference(x, out_shape, [&](const std::vector<int64_t>& idx) {
                     int64_t o = 0;
                     for (size_t d = 0; d < idx.size(); ++d)
                         o += idx[d] * in_strides[static_cast<size_t>(c.perm[d])];
                     return o;
                 }));
}

TEST_CASE("Concat and Split along every axis with blocks of 1 to many elements",
          "[kernels][copy]") {
    const int64_t n = GENERATE(1, 2, 5, 8, 17, 64);
    const std::vector<int64_t> shape{3, n, 4, 2};
    const int64_t axis = GENERATE(0, 1, 2, 3, -1);
    const int64_t a = axis < 0 ? axis + 4 : axis;
    INFO("shape " << shape_string(shape) << " axis " << axis);
    // Three parts of sizes 1, dim and 2 along the axis.
    std::vector<Tensor> parts;
    std::vector<int64_t> sizes{1, shape[static_cast<size_t>(a)], 2};
    for (size_t i = 0; i < sizes.size(); ++i) {
        std::vector<int64_t> s = shape;
        s[static_cast<size_t>(a)] = sizes[i];
        parts.push_back(
            test::random_f32(s, static_cast<uint32_t>(n * 100 + a * 10 + static_cast<int64_t>(i))));
    }
    std::vector<int64_t> out_shape = shape;
    out_shape[static_cast<size_t>(a)] = sizes[0] + sizes[1] + sizes[2];
    OneNode concat;
    concat.op_type = "Concat";
    concat.feeds = {{"p0", parts[0]}, {"p1", parts[1]}, {"p2", parts[2]}};
    concat.inputs = {"p0", "p1", "p2"};
    concat.attributes = {test::int_attr("axis", axis)};
    Tensor joined = run_threads(concat);
    // Reference: element idx comes from the part whose range holds idx[a].
    std::vector<float> want;
    std::vector<int64_t> idx(4, 0);
    for (int64_t i = 0; i < count_of(out_shape); ++i) {
        int64_t k = idx[static_cast<size_t>(a)];
        size_t p = 0;
        while (k >= sizes[p]) k -= sizes[p++];
        std::vector<int64_t> src = idx;
        src[static_cast<size_t>(a)] = k;
        want.push_back(
            parts[p].values<float>()[static_cast<size_t>(offset(src, strides_of(parts[p].shape)))]);
        for (size_t d = 4; d-- > 0;) {
            if (++idx[d] < out_shape[d]) break;
            idx[d] = 0;
        }
    }
    require_same(joined, make_f32_tensor("", out_shape, want));

    // Split undoes it.
    OneNode split;
    split.op_type = "Split";
    split.feeds = {{"x", joined}};
    split.constants = {{"sizes", i64_tensor(sizes)}};
    split.inputs = {"x", "sizes"};
    split.outputs = {"y0", "y1", "y2"};
    split.attributes = {test::int_attr("axis", axis)};
    for (size_t i = 0; i < parts.size(); ++i) require_same(run_threads(split, i), parts[i]);
}

TEST_CASE("Expand and Slice read strided and broadcast sources", "[kernels][copy]") {
    const int64_t n = GENERATE(1, 3, 8, 9, 33);
    SECTION("Expand") {
        Tensor x = test::random_f32({1, 4, 1, n, 1}, static_cast<uint32_t>(n));
        const std::vector<int64_t> target{2, 4, 3, n, 5};
        OneNode node;
        node.op_type = "Expand";
        node.feeds = {{"x", x}};
        node.constants = {{"shape", i64_tensor(target)}};
        node.inputs = {"x", "shape"};
        const auto st = strides_of(x.shape);
        require_same(run_threads(node),
                     gather_reference(x, target, [&](const std::vector<int64_t>& idx) {
                         return idx[1] * st[1] + idx[3] * st[3];
                     }));
    }
    SECTION("Slice") {
        Tensor x = test::random_f32({5, n + 4, 7}, static_cast<uint32_t>(n + 7));
        OneNode node;
        node.op_type = "Slice";
        node.feeds = {{"x", x}};
        // Rows 1..4 step 2, columns 2..n+2, last axis reversed from 6 down to 1 step -2.
        node.constants = {{"starts", i64_tensor({1, 2, 6})},
                          {"ends", i64_tensor({5, n + 2, 0})},
                          {"axes", i64_tensor({0, 1, 2})},
                          {"steps", i64_tensor({2, 1, -2})}};
        node.inputs = {"x", "starts", "ends", "axes", "steps"};
        const auto st = strides_of(x.shape);
        require_same(
            run_threads(node), gather_reference(x, {2, n, 3}, [&](const std::vector<int64_t>& idx) {
                return (1 + 2 * idx[0]) * st[0] + (2 + idx[1]) * st[1] + (6 - 2 * idx[2]) * st[2];
            }));
    }
}

TEST_CASE("MaxPool 2x2 stride 2 matches the definition on narrow and wide rows, NaN included",
          "[kernels][pool]") {
    const int64_t w = GENERATE(2, 3, 4, 14, 15, 16, 17, 18, 31, 32, 33, 34, 35);
    const int64_t h = GENERATE(2, 5);
    const std::vector<int64_t> shape{2, 3, h, w};
    Tensor x = test::random_f32(shape, static_cast<uint32_t>(w * 10 + h));
    {
        // Ties, signed zeros, infinities and NaN in every position of some windows.
        auto v = x.mutable_values<float>();
        const float nan = std::numeric_limits<float>::quiet_NaN(),
                    inf = std::numeric_limits<float>::infinity();
        const float special[] = {nan, -0.0f, 0.0f, inf, -inf, 0.5f, 0.5f, nan};
        for (size_t i = 0; i < v.size(); i += 5) v[i] = special[(i / 5) % 8];
    }
    OneNode node;
    node.op_type = "MaxPool";
    node.feeds = {{"x", x}};
    node.inputs = {"x"};
    node.attributes = {test::ints_attr("kernel_shape", {2, 2}), test::ints_attr("strides", {2, 2})};
    const int64_t oh = h / 2, ow = w / 2;
    auto xv = x.values<float>();
    std::vector<float> want;
    for (int64_t p = 0; p < shape[0] * shape[1]; ++p)
        for (int64_t oy = 0; oy < oh; ++oy)
            for (int64_t ox = 0; ox < ow; ++ox) {
                const float* r0 = xv.data() + p * h * w + 2 * oy * w + 2 * ox;
                const float* r1 = r0 + w;
                float acc = r0[0];
                for (float v : {r0[1], r1[0], r1[1]}) acc = v > acc ? v : acc;
                want.push_back(acc);
            }
    INFO("MaxPool on " << shape_string(shape));
    require_same(run_threads(node), make_f32_tensor("", {shape[0], shape[1], oh, ow}, want));
}

TEST_CASE("Relu runs in place only on values nobody reads afterwards", "[kernels][executor]") {
    const int64_t n = GENERATE(1, 7, 8, 9, 100000);
    Tensor a = test::random_f32({n}, static_cast<uint32_t>(n));
    Tensor b = test::random_f32({n}, static_cast<uint32_t>(n + 1));
    const Tensor a_before = a;
    const std::vector<std::byte> a_bytes(a.data.bytes().begin(), a.data.bytes().end());
    // s = a + b; y = Relu(s); z = Relu(a) (a graph input: must not be written).
    Model model;
    model.opset_imports.push_back({"", 17});
    auto add_node = [&](std::string op, std::vector<std::string> in, std::string out) {
        Node node;
        node.name = out;
        node.op_type = std::move(op);
        node.inputs = std::move(in);
        node.outputs = {std::move(out)};
        model.graph.nodes.push_back(std::move(node));
    };
    add_node("Add", {"a", "b"}, "s");
    add_node("Relu", {"s"}, "y");
    add_node("Relu", {"a"}, "z");
    model.graph.inputs = {ValueInfo{"a", {}, {}}, ValueInfo{"b", {}, {}}};
    model.graph.outputs = {ValueInfo{"y", {}, {}}, ValueInfo{"z", {}, {}}};
    std::vector<float> sum(static_cast<size_t>(n)), relu_sum, relu_a;
    for (int64_t i = 0; i < n; ++i) {
        const float s =
            a.values<float>()[static_cast<size_t>(i)] + b.values<float>()[static_cast<size_t>(i)];
        sum[static_cast<size_t>(i)] = s;
        relu_sum.push_back(s > 0 ? s : 0.0f);
        const float av = a.values<float>()[static_cast<size_t>(i)];
        relu_a.push_back(av > 0 ? av : 0.0f);
    }
    for (int threads : {1, 2, 3}) {
        INFO(threads << " threads");
        rt::Executor exec(model, rt::ExecOptions{threads});
        for (bool fetch : {false, true}) {
            auto out = exec.run({{"a", a}, {"b", b}},
                                fetch ? std::vector<std::string>{"s"} : std::vector<std::string>{});
            REQUIRE(out.size() == (fetch ? 3u : 2u));
            require_same(out[0].second, make_f32_tensor("", {n}, relu_sum));
            require_same(out[1].second, make_f32_tensor("", {n}, relu_a));
            if (fetch) require_same(out[2].second, make_f32_tensor("", {n}, sum));
            REQUIRE(std::memcmp(a.data.bytes().data(), a_bytes.data(), a_bytes.size()) == 0);
            REQUIRE(std::memcmp(a_before.data.bytes().data(), a_bytes.data(), a_bytes.size()) == 0);
        }
    }
}
