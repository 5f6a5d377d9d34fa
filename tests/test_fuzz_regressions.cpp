// Replays the fuzzers' inputs (tests/fuzz/: every crash a harness found, kept in
// regressions/READER/, and the seed corpora in corpus/READER/) through the normal build's
// readers, as the harnesses call them, and the model files through the CLI (`edgepack
// inspect`, and `compress --dry-run` for an ONNX source raised to opset 13): each must load
// or be refused with an InputError naming the file (exit 2), never another exception,
// exit 3 or a signal. `.epk` regressions are stored as the reader saw them, with
// the SHA-256 trailer fuzz_epk re-sealed (docs/fuzzing.md).
#include <algorithm>
#include <functional>

#include "compressor/dataset.h"
#include "compressor/recipe.h"
#include "formats/epk.h"
#include "formats/model_io.h"
#include "formats/onnx_quant_export.h"
#include "ir/error.h"
#include "runtime-check/npy.h"
#include "support.h"
#include "tests/fuzz/fuzz_input.h"

using namespace ep;

namespace {

struct Reader {
    std::string name;
    std::string folder;     // under tests/fuzz/corpus and regressions
    std::string file_name;  // what the harness names the bytes
    std::function<void(const std::filesystem::path&)> read;
    // The same through the CLI: the arguments for the file (empty: in process only).
    std::function<std::vector<std::string>(const std::filesystem::path&)> cli;
};

std::vector<std::string> inspect(const std::filesystem::path& file) {
    return {"inspect", file.string()};
}

// `compress --dry-run` with a recipe whose pass needs opset 13: the source is raised by
// ONNX's version converter, as fuzz_onnx's second read does.
std::vector<std::string> compress_at_opset_13(const std::filesystem::path& file) {
    auto recipe = file.parent_path() / "opset13.json";
    test::write_file(recipe, R"({"model": ")" + file.filename().string() + R"(",
        "passes": [{"pass": "quantize-static"}], "calibration": {"synthetic": true},
        "output": "out.onnx"})");
    return {"compress", recipe.string(), "--dry-run", "--quiet"};
}

std::vector<Reader> readers() {
    auto model = [](const std::filesystem::path& p) { (void)load_model(p); };
    return {
        {"onnx", "onnx", "model.onnx", model, inspect},
        // as compress reads a source a recipe needs at opset 13 (fuzz_onnx's second read)
        {"onnx at opset 13", "onnx", "model.onnx",
         [](const std::filesystem::path& p) {
             (void)load_model(p, OnnxReadOptions{.min_opset = kMinExportOpset});
         },
         compress_at_opset_13},
        {"safetensors", "safetensors", "model.safetensors", model, inspect},
        {"epk", "epk", "model.epk",
         [](const std::filesystem::path& p) {
             (void)read_epk(p, EpkReadOptions{.verify_tensor_checksums = true});
         },
         inspect},
        {"npy", "npy", "input.npy", [](const std::filesystem::path& p) { (void)read_npy(p); }},
        {"npz", "npy", "sample.npz", [](const std::filesystem::path& p) { (void)read_npz(p); }},
        {"recipe", "recipe", "recipe.json",
         [](const std::filesystem::path& p) { (void)load_recipe(p); }},
    };
}

// The files of tests/fuzz/KIND/FOLDER, sorted; .npz files are the npz reader's (the npy
// harness sends bytes starting "PK" there).
std::vector<std::filesystem::path> inputs(const std::string& kind, const Reader& reader) {
    auto dir = test::source_dir() / "tests" / "fuzz" / kind / reader.folder;
    std::vector<std::filesystem::path> files;
    if (!std::filesystem::is_directory(dir)) return files;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
        if (!e.is_regular_file()) continue;
        std::string head = test::read_file(e.path()).substr(0, 2);
        if (reader.folder == "npy" && (head == "PK") != (reader.name == "npz")) continue;
        files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
    return files;
}

// Loads `file` in process and through the CLI, under the harness's file name and beside
// what the harnesses place there (fuzz_recipe's empty model.onnx, fuzz_onnx's weights.bin);
// returns true when the reader accepted it.
bool replay(const Reader& reader, const std::filesystem::path& file) {
    test::TempDir dir;
    test::write_file(dir / "model.onnx", "");
    const auto& weights = fuzz::kExternalWeights;
    test::write_file(dir / "weights.bin", std::string(weights.begin(), weights.end()));
    auto path = dir / reader.file_name;
    test::write_file(path, test::read_file(file));
    bool accepted = false;
    try {
        reader.read(path);
        accepted = true;
    } catch (const Error& e) {
        CHECK(e.code() == ExitCode::BadInput);
        CHECK_THAT(e.what(), Catch::Contains(reader.file_name));
    } catch (const std::exception& e) {
        FAIL_CHECK("not an InputError: " << e.what());
    }
    if (reader.cli) {
        auto r = test::run_edgepack(reader.cli(path));
        INFO("stderr: " << r.err);
        // Refused by the reader: exit 2 with a message. Accepted: the command may still
        // refuse the model for other reasons (compress's plan checks), never crash.
        if (accepted)
            CHECK((r.exit_code == 0 || r.exit_code == 2));
        else
            CHECK(r.exit_code == 2);
        if (r.exit_code == 2) CHECK_THAT(r.err, Catch::Contains("edgepack: error: "));
    }
    return accepted;
}

}  // namespace

TEST_CASE("fuzz: the seeds and every crash the harnesses found load or are refused with exit 2",
          "[fuzz][hostile]") {
    for (const auto& reader : readers()) {
        size_t seeds = 0, accepted = 0;
        for (const auto& file : inputs("corpus", reader)) {
            INFO("reader " << reader.name << ", seed " << file.filename().string());
            accepted += replay(reader, file) ? 1 : 0;
            ++seeds;
        }
        // The seeds hold well-formed files of each kind: a reader that refuses every one
        // of them gives the fuzzer nothing to start from.
        INFO("reader " << reader.name << ": " << accepted << " of " << seeds << " seeds load");
        CHECK(seeds >= 2);
        CHECK(accepted >= 1);
        for (const auto& file : inputs("regressions", reader)) {
            INFO("reader " << reader.name << ", regression " << file.filename().string());
            (void)replay(reader, file);
        }
    }
}
