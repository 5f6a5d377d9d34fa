// UTF-8 checks for strings read out of a file. Names and text end up in JSON (inspect
// --json, report.json, the .epk manifest), which holds UTF-8 only, so readers refuse a
// string field that is not valid UTF-8 before anything writes it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ep {

// Offset of the first byte that does not start or continue a well-formed UTF-8 sequence
// (Unicode 15, table 3-7: no overlong forms, no surrogates, nothing past U+10FFFF), or
// npos when all of `s` is valid. One pass; ASCII runs cost one compare per byte.
[[nodiscard]] inline size_t invalid_utf8_offset(std::string_view s) {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const size_t n = s.size();
    size_t i = 0;
    while (i < n) {
        const unsigned char c = p[i];
        if (c < 0x80) {
            ++i;
            continue;
        }
        size_t len;
        unsigned char lo = 0x80, hi = 0xBF;  // range of the second byte
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else {
            return i;
        }
        if (n - i < len || p[i + 1] < lo || p[i + 1] > hi) return i;
        for (size_t k = 2; k < len; ++k)
            if ((p[i + k] & 0xC0) != 0x80) return i;
        i += len;
    }
    return std::string_view::npos;
}

[[nodiscard]] inline bool valid_utf8(std::string_view s) {
    return invalid_utf8_offset(s) == std::string_view::npos;
}

// `s` for a message: bytes that are not valid UTF-8 and control characters as \xNN, cut
// to about `max_chars` bytes with "..." when longer.
[[nodiscard]] inline std::string printable_utf8(std::string_view s, size_t max_chars = 64) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    auto escape = [&](unsigned char c) {
        out += "\\x";
        out += kHex[c >> 4];
        out += kHex[c & 15];
    };
    size_t i = 0;
    while (i < s.size() && out.size() < max_chars) {
        size_t bad = invalid_utf8_offset(s.substr(i));
        size_t good = bad == std::string_view::npos ? s.size() - i : bad;
        size_t k = 0;
        for (; k < good && out.size() < max_chars; ++k) {
            auto c = static_cast<unsigned char>(s[i + k]);
            if (c < 0x20 || c == 0x7F)
                escape(c);
            else
                out += static_cast<char>(c);
        }
        i += k;
        if (k < good) break;
        if (i < s.size() && out.size() < max_chars) escape(static_cast<unsigned char>(s[i++]));
    }
    // A cut may fall inside a multi-byte sequence: back up to its start.
    while (!valid_utf8(out)) out.pop_back();
    if (i < s.size()) out += "...";
    return out;
}

}  // namespace ep
