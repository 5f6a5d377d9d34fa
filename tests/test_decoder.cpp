// KV-cache decoders (runtime-check/decoder.h): the stories260k decoder that
// scripts/make_decoder.py writes runs token by token in our runtime at parity with ONNX
// Runtime doing the same loop (scripts/xcheck/decoder_ort.py), from the .onnx and the .epk,
// bit-identical for 1 and 2 threads; `edgepack bench` times it as prefill and decode.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "formats/model_io.h"
#include "op_model.h"
#include "pass_model.h"
#include "runtime-check/decoder.h"
#include "runtime-check/executor.h"
#include "runtime-check/npy.h"
#include "support.h"

namespace ep {
namespace {

constexpr int64_t kPrefill = 16;
constexpr int64_t kSteps = 16;

std::filesystem::path stories() {
    return test::shared_models() / "stories260k";
}

// scripts/make_decoder.py on stories260k's safetensors; an empty path when it fails (the
// failure is reported by the caller's REQUIRE).
test::RunResult make_decoder(const std::filesystem::path& out, const std::string& attention,
                             const std::string& weights) {
    return test::run({test::python(), (test::source_dir() / "scripts/make_decoder.py").string(),
                      (stories() / "model.safetensors").string(), "-o", out.string(), "--attention",
                      attention, "--weights", weights});
}

std::vector<int64_t> ref_tokens() {
    auto t = read_npy(stories() / "ref_tokens.npy");
    auto v = t.values<int64_t>();
    return {v.begin(), v.end()};
}

std::vector<float> run_decoder(const Model& model, int threads) {
    rt::Executor exec(model, rt::ExecOptions{threads});
    auto decoder = rt::decoder_interface(exec);
    REQUIRE(decoder.has_value());
    return rt::decode_logits(exec, *decoder, ref_tokens(), kPrefill, kSteps).to_floats();
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
    REQUIRE(a.size() == b.size());
    float d = 0;
    for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(a[i] - b[i]));
    return d;
}

// The model from `attention` / `weights` against ORT on the same decode loop: .onnx and
// .epk, 1 and 2 threads.
void check_parity(const std::string& attention, const std::string& weights, float tolerance) {
    EP_REQUIRE_FILE_OR_SKIP(stories() / "model.safetensors");
    test::TempDir dir;
    auto onnx_path = dir / (attention + "-" + weights + ".onnx");
    auto made = make_decoder(onnx_path, attention, weights);
    INFO(made.err);
    REQUIRE(made.exit_code == 0);
    Model model = load_model(onnx_path);
    if (auto missing = rt::unsupported_ops(model); !missing.empty())
        EP_SKIP("the runtime lacks " << missing.front().qualified_name() << " (and "
                                     << missing.size() - 1 << " more): " << attention
                                     << " decoder not run");

    auto ort_path = dir / "ort.npy";
    auto ort = test::run_oracle(
        "decoder_ort.py",
        {onnx_path.string(), "--tokens", (stories() / "ref_tokens.npy").string(), "--prefill",
         std::to_string(kPrefill), "--steps", std::to_string(kSteps), "--out", ort_path.string()});
    REQUIRE(ort.exit_code == 0);
    auto expected = read_npy(ort_path).to_floats();
    REQUIRE(expected.size() == static_cast<size_t>((kPrefill + kSteps) * 512));

    auto one = run_decoder(model, 1);
    float diff = max_abs_diff(one, expected);
    INFO(attention << " " << weights << ": max abs logit diff vs ORT " << diff << " over "
                   << kPrefill << " prefill + " << kSteps << " decode positions");
    CHECK(diff <= tolerance);
    CHECK(run_decoder(model, 2) == one);  // bit-identical for any thread count

    auto epk_path = dir / (attention + "-" + weights + ".epk");
    save_model(model, epk_path);
    CHECK(run_decoder(load_model(epk_path), 2) == one);
}

TEST_CASE("plain-op stories260k decoder matches ORT over prefill and 16 decode steps",
          "[decoder][xcheck]") {
    check_parity("plain", "fp32", 1e-4f);
}

TEST_CASE("plain-op stories260k int4 decoder matches ORT over prefill and 16 decode steps",
          "[decoder][xcheck]") {
    check_parity("plain", "int4", 1e-4f);
}

TEST_CASE("GenAI-style GQA stories260k int4 decoder matches ORT over prefill and decode",
          "[decoder][xcheck]") {
    check_parity("gqa", "int4", 1e-4f);
}

TEST_CASE("the decode loop equals the full-sequence model's logits", "[decoder]") {
    // stories260k's model.onnx (no cache) on the same tokens: what the cache must not change.
    EP_REQUIRE_FILE_OR_SKIP(stories() / "model.safetensors");
    test::TempDir dir;
    auto path = dir / "plain.onnx";
    REQUIRE(make_decoder(path, "plain", "fp32").exit_code == 0);
    auto cached = run_decoder(load_model(path), 1);

    rt::Executor full(load_model(stories() / "model.onnx"), rt::ExecOptions{1});
    auto tokens = ref_tokens();
    tokens.resize(kPrefill + kSteps);
    Tensor ids;
    ids.name = "input_ids";
    ids.dtype = DType::I64;
    ids.shape = {1, kPrefill + kSteps};
    std::vector<std::byte> bytes(tokens.size() * sizeof(int64_t));
    std::memcpy(bytes.data(), tokens.data(), bytes.size());
    ids.data = TensorData::owned(std::move(bytes));
    auto out = full.run({{"input_ids", ids}});
    auto whole = out.front().second.to_floats();
    CHECK(max_abs_diff(cached, whole) <= 1e-4f);
}

TEST_CASE("a decoder made from a GGUF runs as the one made from its safetensors",
          "[decoder][gguf]") {
    // make_gguf_llama.py writes llama.cpp's names and q/k permutation (F32); make_decoder.py
    // reads them back: the same weights, so the same logits bit for bit.
    EP_REQUIRE_FILE_OR_SKIP(stories() / "model.safetensors");
    test::TempDir dir;
    auto gguf = dir / "stories260k.gguf";
    auto written = test::run_oracle("make_gguf_llama.py",
                                    {(stories() / "model.safetensors").string(), gguf.string()});
    REQUIRE(written.exit_code == 0);
    auto from_gguf = dir / "from-gguf.onnx";
    auto made = test::run({test::python(),
                           (test::source_dir() / "scripts/make_decoder.py").string(), gguf.string(),
                           "-o", from_gguf.string(), "--attention", "plain", "--weights", "fp32"});
    INFO(made.err);
    REQUIRE(made.exit_code == 0);
    auto from_st = dir / "from-safetensors.onnx";
    REQUIRE(make_decoder(from_st, "plain", "fp32").exit_code == 0);
    CHECK(run_decoder(load_model(from_gguf), 1) == run_decoder(load_model(from_st), 1));
}

TEST_CASE("the GQA decoder's cache is one buffer written in place, same logits as a copied one",
          "[decoder]") {
    // GroupQueryAttention reads every past: the session keeps ONNX Runtime GenAI's shared
    // past / present buffer (decoder.h). The logits must be the growing, copied cache's bit
    // for bit, and the buffer must stay the same allocation for the whole sequence (no
    // per-step allocation or copy of the past). The plain graph Concats its past: copied.
    EP_REQUIRE_FILE_OR_SKIP(stories() / "model.safetensors");
    test::TempDir dir;
    auto gqa = dir / "gqa.onnx";
    REQUIRE(make_decoder(gqa, "gqa", "int4").exit_code == 0);
    auto plain = dir / "plain.onnx";
    REQUIRE(make_decoder(plain, "plain", "fp32").exit_code == 0);
    {
        rt::Executor exec(load_model(plain), rt::ExecOptions{1});
        CHECK_FALSE(rt::decoder_interface(exec)->shared_buffer);
    }
    const auto tokens = ref_tokens();
    for (int threads : {1, 2}) {
        INFO(threads << " threads");
        rt::Executor exec(load_model(gqa), rt::ExecOptions{threads});
        auto shared = *rt::decoder_interface(exec);
        REQUIRE(shared.shared_buffer);
        auto copied = shared;
        copied.shared_buffer = false;
        rt::DecodeSession in_place(exec, shared, kPrefill + kSteps);
        rt::DecodeSession growing(exec, copied);
        const std::byte* buffer = nullptr;
        for (int64_t s = 0; s <= kSteps; ++s) {
            auto first = tokens.begin() + (s == 0 ? 0 : kPrefill + s - 1);
            std::vector<int64_t> step(first, tokens.begin() + kPrefill + s);
            auto a = in_place.step(step);
            auto b = growing.step(step);
            CHECK(test::same_bytes(a, b));
            CHECK(in_place.cache(0).shape[2] == kPrefill + kSteps);
            CHECK(growing.cache(0).shape[2] == in_place.position());
            if (s == 0) buffer = in_place.cache(0).data.bytes().data();
            CHECK(in_place.cache(0).data.bytes().data() == buffer);
        }
    }
}

TEST_CASE("a past input without its present output is refused naming both", "[decoder]") {
    Model m;
    m.opset_imports = {{"", 17}};
    ValueInfo ids;
    ids.name = "input_ids";
    ids.type = ValueType{};
    ids.type->elem = DType::I64;
    ids.type->shape = std::vector<Dim>{Dim{1, {}, {}}, Dim{{}, "sequence_length", {}}};
    m.graph.inputs = {ids, test::f32_value("past_key_values.0.key", {1, 2, 0, 4})};
    m.graph.outputs = {test::value("logits")};
    m.graph.nodes = {test::make_node("Identity", "id", {"past_key_values.0.key"}, {"logits"})};
    rt::Executor exec(m, rt::ExecOptions{1});
    try {
        (void)rt::decoder_interface(exec);
        FAIL("no error");
    } catch (const InputError& e) {
        CHECK(std::string(e.what()).find("'past_key_values.0.key' has no output 'present.0.key'") !=
              std::string::npos);
    }
}

TEST_CASE("bench times a KV-cache decoder as prefill and decode tokens per second",
          "[decoder][cli]") {
    EP_REQUIRE_FILE_OR_SKIP(stories() / "model.safetensors");
    test::TempDir dir;
    auto path = dir / "plain.onnx";
    REQUIRE(make_decoder(path, "plain", "int4").exit_code == 0);
    auto r = test::run_edgepack({"bench", path.string(), "--json", "--quiet", "--prefill", "8",
                                 "--steps", "4", "--runs", "2", "--warmup", "0", "--tokens",
                                 (stories() / "ref_tokens.npy").string()});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    auto j = nlohmann::json::parse(r.out);
    const auto& d = j.at("decoder");
    CHECK(d.at("prefill_tokens") == 8);
    CHECK(d.at("decode_steps") == 4);
    CHECK(d.at("cache_inputs") == 10);
    CHECK(d.at("prefill_runs_ms").size() == 2);
    CHECK(d.at("decode_runs_ms").size() == 2);
    CHECK(d.at("prefill_tokens_per_s").get<double>() > 0);
    CHECK(d.at("decode_tokens_per_s").get<double>() > 0);
    CHECK(j.at("peak_rss_bytes").get<uint64_t>() > 0);

    // Fewer tokens than --prefill + --steps: one message naming the file, exit 2.
    auto short_run =
        test::run_edgepack({"bench", path.string(), "--quiet", "--prefill", "60", "--steps", "10",
                            "--tokens", (stories() / "ref_tokens.npy").string()});
    CHECK(short_run.exit_code == 2);
    CHECK(short_run.err.find("ref_tokens.npy") != std::string::npos);
    CHECK(short_run.err.find("needs 70") != std::string::npos);

    // Options the decode loop would ignore are refused, not dropped.
    auto with_input = test::run_edgepack({"bench", path.string(), "--quiet", "--input",
                                          "input_ids=" + (stories() / "ref_tokens.npy").string()});
    CHECK(with_input.exit_code == 2);
    CHECK(with_input.err.find("not --input or --shape") != std::string::npos);
    auto tokens_on_plain_model =
        test::run_edgepack({"bench", (stories() / "model.onnx").string(), "--quiet", "--tokens",
                            (stories() / "ref_tokens.npy").string()});
    CHECK(tokens_on_plain_model.exit_code == 2);
    CHECK(tokens_on_plain_model.err.find("is not a KV-cache decoder") != std::string::npos);
}

}  // namespace
}  // namespace ep
