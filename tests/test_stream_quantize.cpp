// Streaming compression of safetensors checkpoints (compressor/stream_compress.h): the
// chunked RTN quantizer gives the whole-tensor bytes; `edgepack compress` of a checkpoint
// writes, through the streaming path, exactly the .epk / quantized safetensors file the
// in-memory path writes, with the same summary; the driver streams any pass that offers
// Pass::plan_streaming and runs the others in memory; errors leave no file; and the CLI's
// peak resident memory stays near its base on a 64 MiB checkpoint.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <random>
#include <span>
#include <sstream>

#include "compressor/compress.h"
#include "compressor/stream_compress.h"
#include "formats/epk.h"
#include "formats/model_io.h"
#include "formats/safetensors.h"
#include "formats/safetensors_quant.h"
#include "passes/quantize_weights.h"
#include "support.h"

using namespace ep;

namespace {

// A [rows, cols] tensor of seeded normal values (a few exact zeros and large values too)
// stored as `dtype` (f32, f16, bf16).
Tensor random_tensor(const std::string& name, DType dtype, std::vector<int64_t> shape,
                     uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 0.05f);
    Tensor t;
    t.name = name;
    t.dtype = dtype;
    t.shape = std::move(shape);
    auto n = static_cast<size_t>(t.element_count());
    std::vector<float> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = i % 97 == 5 ? 0.0f : i % 89 == 7 ? 3.0f : normal(rng);
    std::vector<std::byte> bytes(n * static_cast<size_t>(traits(dtype).bits / 8));
    for (size_t i = 0; i < n; ++i) {
        if (dtype == DType::F32) {
            std::memcpy(bytes.data() + i * 4, &v[i], 4);
        } else {
            uint16_t h = dtype == DType::F16 ? float_to_half(v[i]) : float_to_bf16(v[i]);
            std::memcpy(bytes.data() + i * 2, &h, 2);
        }
    }
    t.data = TensorData::owned(std::move(bytes));
    return t;
}

// A checkpoint with every kind of tensor the pass meets: f16, bf16 and f32 matrices (row
// lengths that are and are not multiples of the groups), one excluded by a glob, one
// below min_elements, a 1-D f32 tensor, an i64 tensor.
Model checkpoint() {
    Model m;
    m.format = SourceFormat::Safetensors;
    auto& ts = m.graph.initializers;
    ts.push_back(random_tensor("layers.0.wq", DType::F16, {64, 96}, 1));
    ts.push_back(random_tensor("layers.0.wk", DType::BF16, {48, 64}, 2));
    ts.push_back(random_tensor("layers.1.w1", DType::F32, {33, 100}, 3));
    ts.push_back(random_tensor("layers.1.w2", DType::F16, {130, 257}, 4));
    ts.push_back(random_tensor("lm_head", DType::F16, {40, 64}, 5));  // excluded by the recipe
    ts.push_back(random_tensor("tiny", DType::F32, {8, 8}, 6));       // below min_elements
    ts.push_back(random_tensor("norm", DType::F32, {2048}, 7));       // 1-D
    Tensor ids;
    ids.name = "position_ids";
    ids.dtype = DType::I64;
    ids.shape = {40, 50};
    ids.data = TensorData::owned(std::vector<std::byte>(2000 * 8, std::byte{1}));
    ts.push_back(std::move(ids));
    m.metadata = {{"format", "pt"}};
    return m;
}

std::string recipe(const std::string& output, const std::string& options) {
    return cat("{\"model\": \"ckpt.safetensors\", \"passes\": [{\"pass\": \"quantize-weights\"",
               options, ", \"exclude\": [\"lm_head\"]}], \"output\": \"", output, "\"}");
}

struct Compressed {
    std::string err;
    std::string bytes;
};

// run_compress in this process; `in_memory` forces the in-memory path (--verify-each
// takes it; the model is a clean checkpoint, so the hook adds no output).
Compressed compress(const test::TempDir& dir, const std::string& output, const std::string& options,
                    bool in_memory) {
    // The same recipe file for both (an .epk records its SHA-256); -o picks the output.
    test::write_file(dir / "r.json", recipe("recipe-output.epk", options));
    CompressOptions o;
    o.recipe = dir / "r.json";
    o.output = dir / output;
    o.manager.verify_each = in_memory;
    std::ostringstream out, err;
    REQUIRE(run_compress(o, out, err) == 0);
    CHECK(out.str().empty());
    auto text = err.str();
    // The output's name is the only difference the summary may have.
    for (size_t at; (at = text.find(output)) != std::string::npos;)
        text.replace(at, output.size(), "OUT");
    return {text, test::read_file(dir / output)};
}

void check_stream_equals_in_memory(const std::string& extension) {
    const std::string options = GENERATE(
        as<std::string>{}, ", \"bits\": 4, \"group_size\": 32",
        ", \"bits\": 4, \"group_size\": 64, \"symmetric\": false, \"scale_dtype\": \"bf16\"",
        ", \"bits\": 8, \"group_size\": 128",
        ", \"bits\": 8, \"group_size\": 0");  // int8c: every row's codes, then the scales
    INFO("options" << options << ", output " << extension);
    test::TempDir dir;
    write_safetensors(checkpoint(), dir / "ckpt.safetensors");
    auto streamed = compress(dir, "streamed" + extension, options, false);
    auto in_memory = compress(dir, "in_memory" + extension, options, true);
    CHECK(streamed.bytes.size() == in_memory.bytes.size());
    CHECK(streamed.bytes == in_memory.bytes);
    CHECK(streamed.err == in_memory.err);  // the same summary and skip listing
    CHECK_THAT(streamed.err, Catch::Contains("passes[0] quantize-weights: changed, 4 rewrites, "
                                             "4 skipped"));
    CHECK_THAT(streamed.err, Catch::Contains("skipped tiny: 64 elements, below min_elements"));
    CHECK_THAT(streamed.err, Catch::Contains("skipped norm: rank 1"));
    CHECK_THAT(streamed.err, Catch::Contains("skipped lm_head: not selected by include/exclude"));
    CHECK_THAT(streamed.err, Catch::Contains("skipped position_ids: dtype i64"));

    // What was written reads back: four encoded tensors, the rest as they were.
    Model back = load_model(dir / ("streamed" + extension));
    size_t encoded = 0;
    for (const auto& t : back.graph.initializers) encoded += t.is_encoded();
    CHECK(encoded == 4);
    CHECK(back.graph.find_initializer("norm")->data.size() == 2048 * 4);
    CHECK_FALSE(back.graph.find_initializer("lm_head")->is_encoded());
}

std::vector<std::string> directory_entries(const std::filesystem::path& dir) {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(dir))
        names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
}

// A test-only pass, to drive the streaming compressor without quantize-weights: every
// 2-D f32 tensor of at least 64 elements becomes 2 W (f32), a row at a time when streamed.
// With `streams` false it offers no streaming plan, as most passes.
class DoubleMatrices final : public Pass {
  public:
    explicit DoubleMatrices(bool streams) : streams_(streams) {}
    std::string_view name() const override { return "double-matrices"; }
    PassKind kind() const override { return PassKind::Cleanup; }
    std::string_view description() const override { return "test: W' = 2 W"; }
    std::vector<std::string> plan(const Model& model) const override {
        auto picked = selected(model);
        std::vector<std::string> lines;
        for (size_t i = 0; i < picked.size(); ++i)
            lines.push_back(cat("[", i + 1, "/", picked.size(), "] ", picked[i]->name, " x2"));
        return lines;
    }
    PassResult run(Model& model, PassContext& context) override {
        (void)context;
        size_t n = 0;
        for (const Tensor* t : selected(model)) {
            std::vector<float> v = t->to_floats();
            for (auto& x : v) x *= 2.0f;
            Tensor* w = model.graph.find_initializer(t->name);
            *w = make_f32_tensor(w->name, w->shape, v);
            ++n;
        }
        return result(n);
    }
    std::optional<StreamingPlan> plan_streaming(const Model& model) const override {
        if (!streams_) return std::nullopt;
        StreamingPlan p;
        p.action = "double";
        auto picked = selected(model);
        auto lines = plan(model);
        for (size_t i = 0; i < picked.size(); ++i) {
            const Tensor* t = picked[i];
            StreamItem item;
            item.source = t;
            item.header.name = t->name;
            item.header.shape = t->shape;
            item.bytes = t->data.size();
            item.line = lines[i];
            item.write = [t](ByteSink& out) {
                const auto cols = static_cast<size_t>(t->shape[1]);
                std::vector<float> row(cols);
                for (int64_t r = 0; r < t->shape[0]; ++r) {
                    std::memcpy(row.data(), t->data.bytes().data() + r * cols * 4, cols * 4);
                    for (auto& x : row) x *= 2.0f;
                    out.write(std::as_bytes(std::span<const float>(row)));
                }
            };
            p.items.push_back(std::move(item));
        }
        p.result = result(picked.size());
        return p;
    }

  private:
    static std::vector<const Tensor*> selected(const Model& model) {
        std::vector<const Tensor*> picked;
        for (const auto& t : model.graph.initializers)
            if (t.dtype == DType::F32 && !t.is_encoded() && t.shape.size() == 2 &&
                t.element_count() >= 64)
                picked.push_back(&t);
        return picked;
    }
    static PassResult result(size_t n) {
        PassResult r;
        r.rewrites = n;
        r.changed = n > 0;
        r.summary.push_back(cat("doubled ", n, " tensors"));
        return r;
    }
    bool streams_;
};

}  // namespace

TEST_CASE("stream quantize: chunked RTN gives the bytes of the whole-tensor quantizer",
          "[stream]") {
    const DType dtype = GENERATE(DType::F32, DType::F16, DType::BF16);
    const std::string name =
        GENERATE("int4g32", "int4g64a", "int8g128", "int8g32a-bf16", "int8c", "int4g128-bf16");
    const int64_t rows = GENERATE(1, 3, 17);
    const int64_t cols = GENERATE(1, 31, 33, 100, 256);
    auto e = encoding_from_name(name);
    REQUIRE(e);
    Tensor t = random_tensor("w", dtype, {rows, cols}, static_cast<uint32_t>(rows * 1000 + cols));
    const Tensor reference = quantize_tensor_rtn(t, *e);
    auto whole = reference.data.bytes();
    for (size_t chunk : {size_t{1}, size_t{40}, size_t{1000}, kStreamChunkFloats}) {
        INFO(name << " " << dtype_name(dtype) << " [" << rows << ", " << cols << "], chunk "
                  << chunk << " floats");
        BufferSink sink;
        write_rtn_chunked(t, *e, sink, chunk);
        REQUIRE(sink.buffer().size() == whole.size());
        CHECK(std::equal(whole.begin(), whole.end(), sink.buffer().begin()));
    }
}

TEST_CASE("stream quantize: a checkpoint to .epk streams the in-memory path's bytes", "[stream]") {
    check_stream_equals_in_memory(".epk");
}

TEST_CASE("stream quantize: a checkpoint to quantized safetensors streams the in-memory bytes",
          "[stream]") {
    check_stream_equals_in_memory(".safetensors");
}

TEST_CASE("stream quantize: an already quantized checkpoint streams through unchanged",
          "[stream]") {
    test::TempDir dir;
    write_safetensors(checkpoint(), dir / "ckpt.safetensors");
    auto first = compress(dir, "q.safetensors", "", false);
    // Its four encoded tensors are skipped ("already encoded") and copied, as the rest.
    test::write_file(dir / "again.json",
                     "{\"model\": \"q.safetensors\", \"passes\": [{\"pass\": "
                     "\"quantize-weights\", \"exclude\": [\"lm_head\"]}], \"output\": "
                     "\"again.safetensors\"}");
    CompressOptions o;
    o.recipe = dir / "again.json";
    std::ostringstream out, err;
    REQUIRE(run_compress(o, out, err) == 0);
    CHECK_THAT(err.str(), Catch::Contains("0 rewrites, 8 skipped"));
    CHECK_THAT(err.str(), Catch::Contains("skipped 4: already encoded (int4g32) (layers.0.wk"));
    CHECK(test::read_file(dir / "again.safetensors") == first.bytes);
}

TEST_CASE("stream quantize: the streaming path is taken only where it applies", "[stream]") {
    test::TempDir dir;
    write_safetensors(checkpoint(), dir / "ckpt.safetensors");
    test::write_file(dir / "r.json", recipe("q.epk", ""));
    Recipe r = load_recipe(dir / "r.json");
    Model m = load_model(r.model);
    auto plan = plan_stream_compress(r, m, dir / "q.epk");
    REQUIRE(plan);
    CHECK(plan->plan.items.size() == 4);
    CHECK(plan->plan.result.skipped.size() == 4);
    // The pass's plan lines, in the loaded model's order (the file's data order).
    std::string lines;
    for (const auto& item : plan->plan.items) lines += item.line + "\n";
    CHECK(lines ==
          "[1/4] layers.1.w1 [33, 100] f32 -> int4g32, 0.01 MiB -> 0.00 MiB\n"
          "[2/4] layers.0.wk [48, 64] bf16 -> int4g32, 0.01 MiB -> 0.00 MiB\n"
          "[3/4] layers.0.wq [64, 96] f16 -> int4g32, 0.01 MiB -> 0.00 MiB\n"
          "[4/4] layers.1.w2 [130, 257] f16 -> int4g32, 0.06 MiB -> 0.02 MiB\n");
    CHECK(plan_stream_compress(r, m, dir / "q.safetensors"));
    CHECK_FALSE(plan_stream_compress(r, m, dir / "q.onnx"));  // ONNX output: in memory

    // Two passes: in memory.
    test::write_file(dir / "r2.json",
                     "{\"model\": \"ckpt.safetensors\", \"passes\": [{\"pass\": "
                     "\"quantize-weights\"}, {\"pass\": \"quantize-weights\", \"bits\": 8}]}");
    CHECK_FALSE(plan_stream_compress(load_recipe(dir / "r2.json"), m, dir / "q.epk"));
    // A graph model: in memory.
    Model graph = m;
    Node n;
    n.op_type = "Identity";
    n.inputs = {"norm"};
    n.outputs = {"y"};
    graph.graph.nodes.push_back(n);
    CHECK_FALSE(plan_stream_compress(r, graph, dir / "q.epk"));
}

TEST_CASE("stream: the driver streams a pass that offers the hook, runs the others in memory",
          "[stream]") {
    test::TempDir dir;
    write_safetensors(checkpoint(), dir / "ckpt.safetensors");
    const Model m = load_model(dir / "ckpt.safetensors");
    // Without the hook: no streaming plan, so compress runs the pass in memory.
    CHECK_FALSE(
        plan_stream_pass("passes[0]", std::make_unique<DoubleMatrices>(false), m, dir / "q.epk"));
    test::write_file(dir / "r.json",
                     "{\"model\": \"ckpt.safetensors\", \"passes\": [{\"pass\": "
                     "\"promote-constants\"}]}");
    CHECK_FALSE(plan_stream_compress(load_recipe(dir / "r.json"), m, dir / "q.epk"));

    for (const std::string ext : {".epk", ".safetensors"}) {
        INFO("output " << ext);
        auto streamed = dir / ("streamed" + ext), in_memory = dir / ("in_memory" + ext);
        auto plan =
            plan_stream_pass("passes[0]", std::make_unique<DoubleMatrices>(true), m, streamed);
        REQUIRE(plan);
        CHECK(plan->name == "double-matrices");
        REQUIRE(plan->plan.items.size() == 2);  // layers.1.w1 [33, 100], tiny [8, 8]
        CHECK_FALSE(plan_stream_pass("passes[0]", std::make_unique<DoubleMatrices>(true), m,
                                     dir / "q.onnx"));
        SaveOptions save;
        std::ostringstream log;
        StreamTimes times;
        PassRecord record = run_stream_compress(m, *plan, streamed, save, true, log, times);
        CHECK_THAT(log.str(), Catch::Contains("edgepack: [1/1] passes[0] (double-matrices), "
                                              "streaming 2 tensors into "));
        CHECK_THAT(log.str(), Catch::Contains("edgepack:   double [2/2] "));
        CHECK_THAT(log.str(), Catch::Contains("] tiny x2\n"));

        // The in-memory run of the same transform writes the same bytes and result.
        Model model = m;
        PassContext context;
        PassResult result = DoubleMatrices(false).run(model, context);
        save_model(model, in_memory, save);
        CHECK(test::read_file(streamed) == test::read_file(in_memory));
        CHECK(record.result.rewrites == result.rewrites);
        CHECK(record.result.summary == result.summary);
        Model back = load_model(streamed);
        CHECK(back.graph.find_initializer("tiny")->to_floats()[6] ==
              2.0f * m.graph.find_initializer("tiny")->to_floats()[6]);
        CHECK(back.graph.find_initializer("norm")->to_floats() ==
              m.graph.find_initializer("norm")->to_floats());
    }
}

TEST_CASE("stream quantize: a bad recipe field fails before anything is written", "[stream]") {
    test::TempDir dir;
    write_safetensors(checkpoint(), dir / "ckpt.safetensors");
    test::write_file(dir / "r.json", recipe("q.epk", ", \"group_size\": 48"));
    auto r = test::run_edgepack({"compress", (dir / "r.json").string()});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("group_size: 48 is not supported"));
    CHECK(directory_entries(dir.path()) == std::vector<std::string>{"ckpt.safetensors", "r.json"});
}

TEST_CASE("stream quantize: a truncated checkpoint is an input error and leaves no file",
          "[stream]") {
    test::TempDir dir;
    write_safetensors(checkpoint(), dir / "ckpt.safetensors");
    auto size = std::filesystem::file_size(dir / "ckpt.safetensors");
    std::filesystem::resize_file(dir / "ckpt.safetensors", size - 1000);
    test::write_file(dir / "r.json", recipe("q.epk", ""));
    auto r = test::run_edgepack({"compress", (dir / "r.json").string()});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("ckpt.safetensors"));
    CHECK_THAT(r.err, Catch::Contains("run past the end of the data buffer"));
    CHECK(directory_entries(dir.path()) == std::vector<std::string>{"ckpt.safetensors", "r.json"});
}

TEST_CASE("stream quantize: a writer that fails in the middle of a tensor leaves no file",
          "[stream]") {
    test::TempDir dir;
    Model m = checkpoint();
    const Tensor* victim = m.graph.find_initializer("layers.1.w1");
    auto e = *encoding_from_name("int4g32");
    StreamedTensor s;
    s.header = *victim;
    s.header.dtype = DType::F32;
    s.header.encoding = e;
    s.header.data = {};
    s.bytes = s.header.expected_bytes();
    s.write = [&](ByteSink& out) {
        out.write_zeros(100);
        throw InputError("tensor 'layers.1.w1': disk on fire");
    };
    StreamedTensors streamed;
    streamed.emplace(victim, s);
    EpkWriteOptions options;
    options.streamed = &streamed;
    CHECK_THROWS_WITH(write_epk(m, dir / "q.epk", options), Catch::Contains("disk on fire"));
    // Quantized safetensors: the replacement in its stored U8 form.
    Model stored = m;
    const size_t index = static_cast<size_t>(victim - m.graph.initializers.data());
    StreamedTensors streamed_stored;
    streamed_stored.emplace(&stored.graph.initializers[index], s);
    encode_for_safetensors_in_place(stored, streamed_stored);
    CHECK(streamed_stored.begin()->second.header.dtype == DType::U8);
    CHECK_THROWS_WITH(write_safetensors(stored, dir / "q.safetensors", &streamed_stored),
                      Catch::Contains("disk on fire"));
    // A writer that produces the wrong number of bytes is a bug, caught before commit.
    streamed.begin()->second.write = [](ByteSink& out) { out.write_zeros(10); };
    CHECK_THROWS_AS(write_epk(m, dir / "q.epk", options), InternalError);
    CHECK(directory_entries(dir.path()).empty());
}

TEST_CASE("stream quantize: the CLI's peak memory on a 64 MiB checkpoint stays near its base",
          "[stream][memory]") {
#if defined(__SANITIZE_ADDRESS__)
    EP_SKIP("resident memory is not meaningful under AddressSanitizer");
#else
    EP_REQUIRE_FILE_OR_SKIP(std::filesystem::path("/usr/bin/time"));
    // 4 x [2048, 4096] f16 = 4 x 16 MiB. The in-memory path holds the source pages it read
    // (64 MiB), a float copy of a tensor (32 MiB) and every encoded tensor (18 MiB).
    test::TempDir dir;
    {
        Model m;
        m.format = SourceFormat::Safetensors;
        for (int i = 0; i < 4; ++i)
            m.graph.initializers.push_back(
                random_tensor(cat("layers.", i, ".weight"), DType::F16, {2048, 4096}, 10 + i));
        write_safetensors(m, dir / "ckpt.safetensors");
    }
    const double largest_mib = 16.0;
    // Peak RSS (MiB) of one edgepack run. Through GNU time, which forks the run from its
    // own small process: a child spawned from this test would inherit the test's peak
    // (ru_maxrss keeps the high-water mark of the address space it had before exec).
    auto peak_mib = [&](std::vector<std::string> args) {
        auto rss = (dir / "rss.txt").string();
        args.insert(args.begin(),
                    {"/usr/bin/time", "-f", "%M", "-o", rss, test::edgepack_binary().string()});
        auto r = test::run(args);
        INFO(r.err);
        REQUIRE(r.exit_code == 0);
        return std::stod(test::read_file(rss)) / 1024.0;  // %M is in KiB
    };
    for (const char* output : {"q.epk", "q.safetensors"}) {
        test::write_file(dir / "r.json", recipe(output, ""));
        double base = peak_mib({"compress", (dir / "r.json").string(), "--dry-run"});
        double streamed = peak_mib({"compress", (dir / "r.json").string()});
        double in_memory = peak_mib({"compress", (dir / "r.json").string(), "--verify-each"});
        INFO(output << ": peak RSS " << streamed << " MiB streaming, " << in_memory
                    << " MiB in memory, " << base << " MiB for the dry run");
        CHECK(streamed <= 2 * largest_mib + 256);   // the acceptance bound
        CHECK(streamed <= base + 2 * largest_mib);  // and far below the in-memory path
        CHECK(in_memory >= base + 64);
        CHECK(test::read_file(dir / output).size() > 0);
    }
#endif
}
