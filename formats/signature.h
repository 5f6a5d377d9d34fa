// Detached ed25519 signatures of any file (an .epk pack, a delta, an .onnx model), with
// libsodium. Three small text files, one line each, fields separated by one space, ending
// in "\n" (lowercase hex; a reader accepts nothing else, and a file over 1 KiB is refused
// before it is read):
//
//   NAME.pub   edgepack-public-key/1 ed25519 KEY_ID PUBLIC_KEY
//   NAME.key   edgepack-secret-key/1 ed25519 KEY_ID SEED            (mode 0600)
//   FILE.sig   edgepack-signature/1 ed25519ph KEY_ID SIZE SIGNATURE
//
//   PUBLIC_KEY  64 hex: the 32-byte ed25519 public key
//   SEED        64 hex: the 32-byte secret seed (RFC 8032's "secret key"); the key pair is
//               derived from it (crypto_sign_seed_keypair)
//   KEY_ID      16 hex: the first 8 bytes of SHA-256(PUBLIC_KEY's 32 bytes), so a
//               signature names the key that made it and a wrong key is named, not guessed
//   SIZE        decimal: the signed file's size in bytes (a truncated file is named as such)
//   SIGNATURE   128 hex: Ed25519ph (RFC 8032 section 5.1, empty context) over the file's
//               bytes, exactly: SHA-512 of the file, streamed, then signed, so a multi-GB
//               pack is read once in 1 MiB chunks and never held whole. libsodium's
//               crypto_sign_ed25519ph_* (RFC 8032 test vector "abc": tests/test_signature)
//
// KEY_ID and SIZE are not signed: changing them can only make a verification fail.
// Every failure is an InputError (exit 2) naming the file and the key id.
// This library needs only the IR and libsodium (no protobuf, no ONNX, no OpenSSL), so the
// device runtime can link it.
#pragma once

#include <filesystem>
#include <string>

namespace ep {

class Progress;

struct PublicKey {
    std::string key_id;   // 16 hex
    std::string key_hex;  // 64 hex
};

// NAME.pub and NAME.key beside each other.
struct KeyPairPaths {
    std::filesystem::path public_key, secret_key;
};
[[nodiscard]] KeyPairPaths key_pair_paths(const std::filesystem::path& name);

// A fresh key pair from libsodium's CSPRNG, written as NAME.pub and NAME.key (mode 0600).
// Refuses, before writing either, when either exists (InputError naming it); each file is
// written atomically and never replaces one that appeared meanwhile. Returns the key id.
[[nodiscard]] std::string generate_key_pair(const std::filesystem::path& name);

// The detached signature's default path: FILE.sig.
[[nodiscard]] std::filesystem::path default_signature_path(const std::filesystem::path& file);

// Signs `file` with the secret key and writes the signature atomically to `signature`
// (the secret key file is read first; an unreadable file writes nothing). Returns the key id.
// `progress` (may be null) shows the bytes read.
[[nodiscard]] std::string sign_file(const std::filesystem::path& file,
                                    const std::filesystem::path& secret_key,
                                    const std::filesystem::path& signature,
                                    Progress* progress = nullptr);

// Reads and checks a public key file (InputError naming it).
[[nodiscard]] PublicKey read_public_key(const std::filesystem::path& public_key);

// Checks that `signature` is a signature of `file` by `public_key`; throws InputError naming
// the file, the signature and the key id(s) when it is missing, unreadable, made by another
// key, or does not match the file's bytes. Returns the key id.
std::string verify_signature(const std::filesystem::path& file,
                             const std::filesystem::path& public_key,
                             const std::filesystem::path& signature, Progress* progress = nullptr);
// The same with the signature at default_signature_path(file).
void verify_signature(const std::filesystem::path& file, const std::filesystem::path& public_key);

}  // namespace ep
