// libFuzzer harness: the .epk reader (formats/epk) through load_model, as `edgepack run`
// opens a pack. The trailer is re-sealed first (SHA-256 of everything before it, as
// tests/epk_edit.h does for the hostile tests): a mutation that only met the checksum would
// never reach the header, manifest and tensor checks behind it. The unsealed bytes are read
// too, one input in 16, so the checksum path itself stays covered.
#include <cstring>
#include <vector>

#include "formats/epk.h"
#include "formats/model_io.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::vector<uint8_t> bytes(data, data + size);
    bool reseal = size >= 32 && data[0] % 16 != 15;
    if (reseal) {
        ep::Sha256 sha;
        sha.update(std::as_bytes(std::span(bytes.data(), size - 32)));
        auto digest = sha.finish();
        std::memcpy(bytes.data() + size - 32, digest.data(), 32);
    }
    auto path = ep::fuzz::input_file(bytes, "model.epk");
    ep::fuzz::expect_ok_or_input_error(
        [&] { (void)ep::read_epk(path, ep::EpkReadOptions{.verify_tensor_checksums = true}); });
    ep::fuzz::expect_ok_or_input_error([&] { (void)ep::load_model(path); });
    return 0;
}
