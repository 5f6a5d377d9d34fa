// One check for hostile checkpoint files (safetensors, GGUF): the file is refused by
// load_model and by `edgepack inspect` with exit 2, both naming the file and `message`.
#pragma once

#include <string>

#include "formats/model_io.h"
#include "ir/error.h"
#include "support.h"

namespace ep::test {

// Writes `bytes` to a temporary NAME.EXTENSION and expects both refusals.
inline void expect_file_rejected(const std::string& name, const std::string& extension,
                                 const std::string& bytes, const std::string& message) {
    TempDir dir;
    auto file = dir / (name + extension);
    write_file(file, bytes);
    INFO("file " << file.filename().string() << ", expecting: " << message);
    try {
        (void)load_model(file);
        FAIL("load_model accepted the file");
    } catch (const Error& e) {
        CHECK(e.code() == ExitCode::BadInput);
        CHECK_THAT(e.what(), Catch::Contains(file.string()) && Catch::Contains(message));
    }
    auto r = run_edgepack({"inspect", file.string()});
    INFO("stdout: " << r.out << "\nstderr: " << r.err);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains(file.filename().string()) && Catch::Contains(message));
}

}  // namespace ep::test
