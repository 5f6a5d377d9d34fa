// Editing .epk bytes for the hostile-file tests: header fields, the manifest (lengths
// updated) and the trailer, re-sealed so the damage sits behind a valid checksum and the
// check behind it is reached.
#pragma once

#include <cstring>
#include <functional>
#include <span>
#include <string>

#include <nlohmann/json.hpp>

#include "formats/epk.h"

namespace ep::test {

inline uint64_t get_u64(const std::string& f, size_t at) {
    uint64_t v = 0;
    std::memcpy(&v, f.data() + at, 8);
    return v;
}
inline void put_u64(std::string& f, size_t at, uint64_t v) {
    std::memcpy(f.data() + at, &v, 8);
}
inline void put_u32(std::string& f, size_t at, uint32_t v) {
    std::memcpy(f.data() + at, &v, 4);
}

// Recomputes the trailer so the damage is behind a valid checksum.
inline void reseal(std::string& f) {
    Sha256 sha;
    sha.update(std::as_bytes(std::span(f.data(), f.size() - 32)));
    auto d = sha.finish();
    std::memcpy(f.data() + f.size() - 32, d.data(), 32);
}

// One hostile file of a table test: made from a good file, and a piece of the message
// expected when it is read.
struct HostileCase {
    std::string label;
    std::function<std::string(const std::string&)> make;
    std::string expected;
};

// An edit writing `v` as a little-endian u32 (n = 4) or u64 (n = 8) at byte `at`, resealed.
inline std::function<std::string(const std::string&)> patched_field(size_t at, uint64_t v, int n) {
    return [=](const std::string& f) {
        std::string g = f;
        if (n == 4)
            put_u32(g, at, static_cast<uint32_t>(v));
        else
            put_u64(g, at, v);
        reseal(g);
        return g;
    };
}

// Replaces the manifest text (header lengths updated) and reseals.
inline std::string with_manifest(const std::string& f, const std::string& text) {
    uint64_t mo = get_u64(f, 16);
    std::string out = f.substr(0, mo) + text + std::string(32, '\0');
    put_u64(out, 24, text.size());
    put_u64(out, 48, out.size());
    reseal(out);
    return out;
}

inline std::string manifest_of(const std::string& f) {
    return f.substr(get_u64(f, 16), get_u64(f, 24));
}

inline std::string edit_manifest(const std::string& f,
                                 const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json j = nlohmann::json::parse(manifest_of(f));
    edit(j);
    return with_manifest(f, j.dump());
}

}  // namespace ep::test
