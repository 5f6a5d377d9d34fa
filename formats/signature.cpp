#include "formats/signature.h"

#include <sodium.h>

#include <algorithm>
#include <array>
#include <functional>
#include <utility>
#include <vector>

#include "ir/error.h"
#include "ir/mapped_file.h"
#include "ir/output_file.h"
#include "ir/progress.h"

namespace ep {
namespace {

constexpr const char* kPublicTag = "edgepack-public-key/1";
constexpr const char* kSecretTag = "edgepack-secret-key/1";
constexpr const char* kSignatureTag = "edgepack-signature/1";
constexpr size_t kMaxKeyFileBytes = 1024;
constexpr size_t kChunk = size_t{1} << 20;

static_assert(crypto_sign_PUBLICKEYBYTES == 32 && crypto_sign_SEEDBYTES == 32 &&
              crypto_sign_BYTES == 64 && crypto_sign_SECRETKEYBYTES == 64);

void init_sodium() {
    static const int status = sodium_init();  // 0 first time, 1 when already initialised
    if (status < 0) throw InternalError("libsodium: initialisation failed");
}

std::string to_hex(const unsigned char* p, size_t n) {
    std::string s(n * 2 + 1, '\0');
    sodium_bin2hex(s.data(), s.size(), p, n);
    s.pop_back();
    return s;
}

bool is_hex(const std::string& s, size_t chars) {
    return s.size() == chars && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

template <size_t N>
std::array<unsigned char, N> from_hex(const std::string& s) {
    std::array<unsigned char, N> out{};
    size_t n = 0;
    if (sodium_hex2bin(out.data(), N, s.data(), s.size(), nullptr, &n, nullptr) != 0 || n != N)
        throw InternalError("hex decoding of checked hex failed");
    return out;
}

std::string key_id_of(const std::array<unsigned char, crypto_sign_PUBLICKEYBYTES>& pk) {
    std::array<unsigned char, crypto_hash_sha256_BYTES> digest{};
    crypto_hash_sha256(digest.data(), pk.data(), pk.size());
    return to_hex(digest.data(), 8);
}

// The whole of a small text file, refused unread when larger than kMaxKeyFileBytes.
std::string read_small_file(const std::filesystem::path& path, const char* what) {
    auto file = MappedFile::open(path);  // InputError "PATH: cannot open: ..."
    if (file->size() > kMaxKeyFileBytes)
        throw InputError(cat(path.string(), ": not an edgepack ", what, " (", file->size(),
                             " bytes; one is under ", kMaxKeyFileBytes, ")"));
    return {reinterpret_cast<const char*>(file->bytes().data()), file->size()};
}

// The space-separated fields of a one-line key or signature file whose first field is `tag`.
// Names the other edgepack files by their tag, so a swapped argument is said as such.
std::vector<std::string> fields_of(const std::filesystem::path& path, const char* what,
                                   const char* tag, size_t count) {
    std::string text = read_small_file(path, what);
    auto bad = [&](const std::string& why) -> InputError {
        return InputError(cat(path.string(), ": not an edgepack ", what, ": ", why));
    };
    if (!text.empty() && text.back() == '\n') text.pop_back();
    std::vector<std::string> fields;
    size_t start = 0;
    for (;;) {
        size_t space = text.find(' ', start);
        fields.push_back(text.substr(start, space - start));
        if (space == std::string::npos) break;
        start = space + 1;
    }
    if (fields[0] != tag) {
        for (const char* other : {kPublicTag, kSecretTag, kSignatureTag})
            if (fields[0] == other) throw bad(cat("it is an ", other, " file, expected ", tag));
        throw bad(cat("expected a line starting with '", tag, "'"));
    }
    if (fields.size() != count || text.find_first_of("\r\n\t") != std::string::npos)
        throw bad(cat("expected one line of ", count, " space-separated fields"));
    return fields;
}

struct SecretKey {
    std::string key_id;
    std::array<unsigned char, crypto_sign_SECRETKEYBYTES> sk{};
    ~SecretKey() { sodium_memzero(sk.data(), sk.size()); }
};

// The key id and the key's 64 hex digits of a public or secret key file, checked.
std::pair<std::string, std::string> read_key_file(const std::filesystem::path& path,
                                                  const char* what, const char* tag) {
    init_sodium();
    auto f = fields_of(path, what, tag, 4);
    if (f[1] != "ed25519")
        throw InputError(
            cat(path.string(), ": key algorithm '", f[1], "' is not supported (ed25519)"));
    if (!is_hex(f[2], 16) || !is_hex(f[3], 64))
        throw InputError(cat(path.string(), ": not an edgepack ", what,
                             ": expected a 16-hex key id and a 64-hex key"));
    return {f[2], f[3]};
}

SecretKey read_secret_key(const std::filesystem::path& path) {
    auto [id, seed_hex] = read_key_file(path, "secret key", kSecretTag);
    auto seed = from_hex<crypto_sign_SEEDBYTES>(seed_hex);
    sodium_memzero(seed_hex.data(), seed_hex.size());
    SecretKey key;
    std::array<unsigned char, crypto_sign_PUBLICKEYBYTES> pk{};
    crypto_sign_seed_keypair(pk.data(), key.sk.data(), seed.data());
    sodium_memzero(seed.data(), seed.size());
    key.key_id = key_id_of(pk);
    if (key.key_id != id)
        throw InputError(cat(path.string(), ": the file says key id ", id, " but its seed is key ",
                             key.key_id, ": the key file is corrupt"));
    return key;
}

struct Signature {
    std::string key_id;
    uint64_t size = 0;
    std::array<unsigned char, crypto_sign_BYTES> bytes{};
};

Signature read_signature(const std::filesystem::path& path) {
    auto f = fields_of(path, "signature", kSignatureTag, 5);
    if (f[1] != "ed25519ph")
        throw InputError(
            cat(path.string(), ": signature algorithm '", f[1], "' is not supported (ed25519ph)"));
    bool size_ok = !f[3].empty() && f[3].size() <= 19 &&
                   f[3].find_first_not_of("0123456789") == std::string::npos &&
                   (f[3] == "0" || f[3][0] != '0');
    if (!is_hex(f[2], 16) || !size_ok || !is_hex(f[4], 128))
        throw InputError(cat(path.string(),
                             ": not an edgepack signature: expected a 16-hex key id, a decimal "
                             "size and a 128-hex signature"));
    Signature s;
    s.key_id = f[2];
    s.size = std::stoull(f[3]);
    s.bytes = from_hex<crypto_sign_BYTES>(f[4]);
    return s;
}

// Feeds the file's bytes to `consume` in 1 MiB chunks through a mapping whose pages are
// released as it goes (as sha256_file_hex), so resident memory stays bounded; returns the
// number of bytes read.
uint64_t stream_file(const std::filesystem::path& path, const char* label, Progress* progress,
                     const std::function<void(const unsigned char*, size_t)>& consume) {
    auto file = MappedFile::open(path);  // InputError "PATH: cannot open: ..."
    auto all = file->bytes();
    auto step = progress_step(progress, label, (all.size() + kChunk - 1) / kChunk, "MiB");
    for (size_t at = 0; at < all.size(); at += kChunk) {
        size_t n = std::min(kChunk, all.size() - at);
        consume(reinterpret_cast<const unsigned char*>(all.data() + at), n);
        file->release(at, n);
        step.advance(1);
    }
    step.finish();
    return all.size();
}

}  // namespace

KeyPairPaths key_pair_paths(const std::filesystem::path& name) {
    return {std::filesystem::path(name.string() + ".pub"),
            std::filesystem::path(name.string() + ".key")};
}

std::string generate_key_pair(const std::filesystem::path& name) {
    init_sodium();
    auto paths = key_pair_paths(name);
    for (const auto& p : {paths.public_key, paths.secret_key})
        if (std::filesystem::exists(std::filesystem::symlink_status(p)))
            throw InputError(cat(p.string(), ": already exists (keygen does not replace keys)"));
    std::array<unsigned char, crypto_sign_PUBLICKEYBYTES> pk{};
    SecretKey key;
    crypto_sign_keypair(pk.data(), key.sk.data());
    key.key_id = key_id_of(pk);
    std::array<unsigned char, crypto_sign_SEEDBYTES> seed{};
    crypto_sign_ed25519_sk_to_seed(seed.data(), key.sk.data());
    std::string secret_line =
        cat(kSecretTag, " ed25519 ", key.key_id, " ", to_hex(seed.data(), seed.size()), "\n");
    sodium_memzero(seed.data(), seed.size());
    // The secret first: a public key alone is never left without its secret.
    OutputFile secret(paths.secret_key, {.permissions = 0600, .replace = false});
    secret.write(secret_line);
    sodium_memzero(secret_line.data(), secret_line.size());
    OutputFile pub(paths.public_key, {.permissions = 0644, .replace = false});
    pub.write(cat(kPublicTag, " ed25519 ", key.key_id, " ", to_hex(pk.data(), pk.size()), "\n"));
    secret.commit();
    try {
        pub.commit();
    } catch (...) {
        std::filesystem::remove(paths.secret_key);
        throw;
    }
    return key.key_id;
}

std::filesystem::path default_signature_path(const std::filesystem::path& file) {
    return std::filesystem::path(file.string() + ".sig");
}

std::string sign_file(const std::filesystem::path& file, const std::filesystem::path& secret_key,
                      const std::filesystem::path& signature, Progress* progress) {
    SecretKey key = read_secret_key(secret_key);
    crypto_sign_state state;
    crypto_sign_init(&state);
    uint64_t size = stream_file(file, "sign", progress, [&](const unsigned char* p, size_t n) {
        crypto_sign_update(&state, p, n);
    });
    std::array<unsigned char, crypto_sign_BYTES> sig{};
    if (crypto_sign_final_create(&state, sig.data(), nullptr, key.sk.data()) != 0)
        throw InternalError("libsodium: signing failed");
    OutputFile out(signature);
    out.write(cat(kSignatureTag, " ed25519ph ", key.key_id, " ", size, " ",
                  to_hex(sig.data(), sig.size()), "\n"));
    out.commit();
    return key.key_id;
}

PublicKey read_public_key(const std::filesystem::path& public_key) {
    auto [id, key_hex] = read_key_file(public_key, "public key", kPublicTag);
    if (auto derived = key_id_of(from_hex<crypto_sign_PUBLICKEYBYTES>(key_hex)); derived != id)
        throw InputError(cat(public_key.string(), ": the file says key id ", id, " but its key is ",
                             derived, ": the key file is corrupt"));
    return {id, key_hex};
}

std::string verify_signature(const std::filesystem::path& file,
                             const std::filesystem::path& public_key,
                             const std::filesystem::path& signature, Progress* progress) {
    PublicKey key = read_public_key(public_key);
    const std::string where = file.string();
    if (!std::filesystem::exists(file)) throw InputError(cat(where, ": no such file"));
    if (!std::filesystem::exists(signature))
        throw InputError(cat(where, ": no signature: ", signature.string(),
                             " does not exist (expected one by key ", key.key_id, " of ",
                             public_key.string(), "; made by `edgepack sign`)"));
    Signature sig = with_context(where, [&] { return read_signature(signature); });
    if (sig.key_id != key.key_id)
        throw InputError(cat(where, ": signed by key ", sig.key_id, " (", signature.string(),
                             "), but the public key ", public_key.string(), " is key ",
                             key.key_id));
    if (std::error_code ec; std::filesystem::file_size(file, ec) != sig.size && !ec)
        throw InputError(cat(where, ": ", std::filesystem::file_size(file), " bytes, but ",
                             signature.string(), " (key ", key.key_id, ") was made over ", sig.size,
                             " bytes: the file was truncated or changed after signing"));
    crypto_sign_state state;
    crypto_sign_init(&state);
    uint64_t size = stream_file(file, "verify", progress, [&](const unsigned char* p, size_t n) {
        crypto_sign_update(&state, p, n);
    });
    auto pk = from_hex<crypto_sign_PUBLICKEYBYTES>(key.key_hex);
    if (size != sig.size || crypto_sign_final_verify(&state, sig.bytes.data(), pk.data()) != 0)
        throw InputError(cat(where, ": the signature ", signature.string(), " by key ", key.key_id,
                             " does not match the file: the file was changed after signing, "
                             "or the signature is corrupt"));
    return key.key_id;
}

void verify_signature(const std::filesystem::path& file, const std::filesystem::path& public_key) {
    (void)verify_signature(file, public_key, default_signature_path(file), nullptr);
}

}  // namespace ep
