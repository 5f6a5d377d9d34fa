// merge-lora against PEFT's merge_and_unload() (scripts/xcheck/lora_vs_peft.py): the shared
// GPT-2 adapter and PEFT-made rsLoRA / DoRA adapters merged by us onto a GPT-2-shaped base,
// as safetensors (every tensor within 1e-6 of PEFT's) and as its ONNX export (ONNX Runtime's
// logits within 1e-4 of the PyTorch merged model's). The oracle needs torch, transformers
// and peft (scripts/xcheck/requirements-lora.txt), which the default set-up does not
// install: without them the test skips and says so.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "passes/registry.h"
#include "support.h"

using namespace ep;

TEST_CASE("merge-lora equals PEFT's merge_and_unload (LoRA, rsLoRA, DoRA, on safetensors and ONNX)",
          "[lora][oracle]") {
    auto adapter = test::shared_models() / "peft-gpt2-lora/adapter_config.json";
    EP_REQUIRE_FILE_OR_SKIP(adapter);
    if (create_pass("merge-lora") == nullptr) EP_SKIP("the merge-lora pass is not built");
    auto probe = test::run({test::python(), "-c", "import torch, transformers, peft"});
    if (probe.exit_code != 0)
        EP_SKIP(
            "torch / transformers / peft are not installed in the venv (pip install -r "
            "scripts/xcheck/requirements-lora.txt): the PEFT oracle cannot run");

    test::TempDir dir;
    auto r = test::run_oracle("lora_vs_peft.py", {"--edgepack", test::edgepack_binary().string(),
                                                  "--work", dir.path().string(), "--shared",
                                                  test::shared_models().string(), "--no-install"});
    INFO(r.out << r.err);
    REQUIRE((r.exit_code == 0 || r.exit_code == 1));
    auto report = nlohmann::json::parse(r.out);
    for (const char* kind : {"lora", "rslora", "dora"}) {
        INFO(kind);
        const auto& a = report.at("adapters").at(kind);
        CHECK(a.at("missing_in_ours").empty());
        CHECK(a.at("tensors_compared").get<int>() > 100);  // 12 layers x 12 tensors + heads
        CHECK(a.at("safetensors_max_abs").get<double>() <= 1e-6);
        CHECK(a.at("onnx_max_abs").get<double>() <= 1e-4);
        // The merge changed the outputs (the logits are not all zero).
        CHECK(a.at("logits_max_abs").get<double>() > 1e-3);
    }
    CHECK(r.exit_code == 0);
}
