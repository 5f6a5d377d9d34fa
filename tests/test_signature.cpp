// Detached ed25519 signatures (formats/signature.h): the bytes against RFC 8032's Ed25519ph
// vector, keygen's files, and run / validate --verify-key refusing every bad case with exit 2
// and one message naming the file and the key id, before the model is read.
#include <sys/stat.h>

#include <filesystem>
#include <sstream>
#include <string>

#include <catch2/catch.hpp>

#include "formats/epk.h"
#include "formats/model_io.h"
#include "formats/signature.h"
#include "ir/error.h"
#include "support.h"

namespace fs = std::filesystem;
using namespace ep;

namespace {

unsigned permissions_of(const fs::path& path) {
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    return st.st_mode & 07777;
}

std::string unhex(const std::string& h) {
    std::string out;
    for (size_t i = 0; i < h.size(); i += 2)
        out += static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16));
    return out;
}

// The key id as signature.h defines it, computed with OpenSSL's SHA-256 (not libsodium's).
std::string key_id(const std::string& public_key_hex) {
    std::string raw = unhex(public_key_hex);
    Sha256 sha;
    sha.update(std::as_bytes(std::span(raw.data(), raw.size())));
    return hex(sha.finish()).substr(0, 16);
}

// The fields of a one-line key or signature file.
std::vector<std::string> fields(const fs::path& path) {
    std::string text = test::read_file(path);
    REQUIRE(!text.empty());
    REQUIRE(text.back() == '\n');
    text.pop_back();
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string f; in >> f;) out.push_back(f);
    return out;
}

void flip_byte(const fs::path& path, size_t at) {
    std::string bytes = test::read_file(path);
    REQUIRE(at < bytes.size());
    bytes[at] = static_cast<char>(bytes[at] ^ 0x01);
    test::write_file(path, bytes);
}

}  // namespace

TEST_CASE("signature: sign gives RFC 8032's Ed25519ph signature of \"abc\"", "[signature]") {
    // RFC 8032 section 7.3, TEST abc (Ed25519ph).
    const std::string seed = "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42";
    const std::string pk = "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf";
    const std::string sig =
        "98a70222f0b8121aa9d30f813d683f809e462b469c7ff87639499bb94e6dae41"
        "31f85042463c2a355a2003d062adf5aaa10b8c61e636062aaad11c2a26083406";
    test::TempDir dir;
    const std::string id = key_id(pk);
    test::write_file(dir / "rfc.key", cat("edgepack-secret-key/1 ed25519 ", id, " ", seed, "\n"));
    test::write_file(dir / "rfc.pub", cat("edgepack-public-key/1 ed25519 ", id, " ", pk, "\n"));
    test::write_file(dir / "abc", "abc");
    auto r = test::run_edgepack(
        {"sign", (dir / "abc").string(), "--key", (dir / "rfc.key").string(), "--quiet"});
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK_THAT(r.out, Catch::Contains("signed by key " + id));
    CHECK(test::read_file(dir / "abc.sig") ==
          cat("edgepack-signature/1 ed25519ph ", id, " 3 ", sig, "\n"));
    CHECK_NOTHROW(verify_signature(dir / "abc", dir / "rfc.pub"));
    // An empty file signs and verifies too (-o names the signature).
    test::write_file(dir / "empty", "");
    r = test::run_edgepack({"sign", (dir / "empty").string(), "--key", (dir / "rfc.key").string(),
                            "-o", (dir / "e.sig").string(), "--quiet"});
    REQUIRE(r.exit_code == 0);
    CHECK(fields(dir / "e.sig")[3] == "0");
    CHECK(verify_signature(dir / "empty", dir / "rfc.pub", dir / "e.sig") == id);
    CHECK_THROWS_AS(verify_signature(dir / "abc", dir / "rfc.pub", dir / "e.sig"), InputError);
}

TEST_CASE("signature: keygen writes a 0600 secret key and never replaces a key", "[signature]") {
    test::TempDir dir;
    auto r = test::run_edgepack({"keygen", "-o", (dir / "k").string()});
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    auto pub = fields(dir / "k.pub");
    auto key = fields(dir / "k.key");
    REQUIRE(pub.size() == 4);
    REQUIRE(key.size() == 4);
    CHECK(pub[0] == "edgepack-public-key/1");
    CHECK(key[0] == "edgepack-secret-key/1");
    CHECK(pub[2] == key_id(pub[3]));
    CHECK(key[2] == pub[2]);
    CHECK(key[3] != pub[3]);
    CHECK_THAT(r.out, Catch::Contains("key " + pub[2]));
    CHECK(permissions_of(dir / "k.key") == 0600);
    CHECK(permissions_of(dir / "k.pub") == 0644);
    CHECK(read_public_key(dir / "k.pub").key_id == pub[2]);
    // No temporaries left beside them.
    size_t files = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir.path())) ++files;
    CHECK(files == 2);

    const std::string secret = test::read_file(dir / "k.key");
    r = test::run_edgepack({"keygen", "-o", (dir / "k").string()});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("k.pub: already exists"));
    CHECK(test::read_file(dir / "k.key") == secret);
    // Only the public half present: still refused, and no secret key appears.
    fs::rename(dir / "k.pub", dir / "lone.pub");
    r = test::run_edgepack({"keygen", "-o", (dir / "lone").string()});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("lone.pub: already exists"));
    CHECK(!fs::exists(dir / "lone.key"));
    // Two key pairs differ.
    r = test::run_edgepack({"keygen", "-o", (dir / "k2").string()});
    REQUIRE(r.exit_code == 0);
    CHECK(fields(dir / "k2.pub")[2] != pub[2]);
}

TEST_CASE("signature: run and validate --verify-key on a signed MNIST pack", "[signature]") {
    const fs::path mnist = test::shared_models() / "mnist" / "mnist-cnn.onnx";
    const fs::path batch = test::source_dir() / ".cache" / "data" / "mnist-test" / "batch_00.npz";
    EP_REQUIRE_FILE_OR_SKIP(mnist);
    EP_REQUIRE_FILE_OR_SKIP(batch);
    test::TempDir dir;
    fs::create_directories(dir / "data");
    fs::create_symlink(batch, dir / "data" / "batch_00.npz");
    const fs::path pack = dir / "mnist.epk";
    write_epk(load_model(mnist), pack);
    REQUIRE(fs::file_size(pack) > (size_t{1} << 20));  // several 1 MiB chunks

    REQUIRE(test::run_edgepack({"keygen", "-o", (dir / "k").string()}).exit_code == 0);
    REQUIRE(test::run_edgepack({"keygen", "-o", (dir / "other").string()}).exit_code == 0);
    const std::string id = fields(dir / "k.pub")[2];
    const std::string other_id = fields(dir / "other.pub")[2];
    auto r = test::run_edgepack({"sign", pack.string(), "--key", (dir / "k.key").string()});
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK_THAT(r.out, Catch::Contains("mnist.epk.sig: " + pack.string() + " signed by key " + id));
    const std::string signature = test::read_file(dir / "mnist.epk.sig");
    CHECK(fields(dir / "mnist.epk.sig")[3] == std::to_string(fs::file_size(pack)));

    // run with a key: checks, says so, runs on the real MNIST batch.
    auto run = [&](const fs::path& model, const fs::path& public_key,
                   std::vector<std::string> extra = {}) {
        fs::remove_all(dir / "out");
        std::vector<std::string> args{
            "run",   model.string(),         "--data",       (dir / "data").string(),
            "--out", (dir / "out").string(), "--verify-key", public_key.string()};
        args.insert(args.end(), extra.begin(), extra.end());
        return test::run_edgepack(args);
    };
    r = run(pack, dir / "k.pub");
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK_THAT(r.err, Catch::Contains("mnist.epk: signature verified (key " + id + ")"));
    CHECK(fs::exists(dir / "out"));
    r = test::run_edgepack({"validate", "--reference", mnist.string(), "--candidate", pack.string(),
                            "--data", (dir / "data").string(), "--verify-key",
                            (dir / "k.pub").string()});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.err, Catch::Contains("signature verified (key " + id + ")"));

    // Every bad case: exit 2, one message naming the file and the key, before the model is
    // read (a flipped byte of the pack is the signature's message, not the .epk checksum's).
    // Plain blocks, not SECTIONs, so the pack is made and run once.
    auto refused = [&](const test::RunResult& res, const std::vector<std::string>& parts) {
        INFO(res.out << res.err);
        CHECK(res.exit_code == 2);
        for (const auto& p : parts) CHECK_THAT(res.err, Catch::Contains(p));
        CHECK(!fs::exists(dir / "out"));
    };
    const fs::path copy = dir / "copy.epk";
    const fs::path copy_sig = dir / "copy.epk.sig";
    auto fresh_copy = [&] {
        fs::copy_file(pack, copy, fs::copy_options::overwrite_existing);
        test::write_file(copy_sig, signature);
    };
    {
        INFO("a flipped byte in the pack");
        fresh_copy();
        flip_byte(copy, fs::file_size(copy) / 2);
        refused(run(copy, dir / "k.pub"), {copy.string() + ": the signature " + copy_sig.string() +
                                           " by key " + id + " does not match the file"});
        auto v = test::run_edgepack({"validate", "--reference", mnist.string(), "--candidate",
                                     copy.string(), "--verify-key", (dir / "k.pub").string()});
        refused(v, {"by key " + id + " does not match the file"});
    }
    {
        INFO("a flipped byte in the signature");
        fresh_copy();
        std::string s = signature;
        s[s.size() - 10] = s[s.size() - 10] == '0' ? '1' : '0';
        test::write_file(copy_sig, s);
        refused(run(copy, dir / "k.pub"),
                {"copy.epk: the signature", "by key " + id, "does not match the file"});
    }
    {
        INFO("another key");
        refused(run(pack, dir / "other.pub"),
                {pack.string() + ": signed by key " + id, "other.pub is key " + other_id});
    }
    {
        INFO("no signature");
        fs::copy_file(pack, copy, fs::copy_options::overwrite_existing);
        fs::remove(copy_sig);
        refused(run(copy, dir / "k.pub"),
                {copy.string() + ": no signature: " + copy_sig.string(), "key " + id});
    }
    {
        INFO("a truncated pack");
        fresh_copy();
        std::string bytes = test::read_file(copy);
        test::write_file(copy, bytes.substr(0, bytes.size() - 1));
        refused(run(copy, dir / "k.pub"),
                {copy.string() + ": " + std::to_string(bytes.size() - 1) + " bytes", "key " + id,
                 "was made over " + std::to_string(bytes.size()) + " bytes"});
    }
    {
        INFO("a truncated or garbage signature file");
        fresh_copy();
        test::write_file(copy_sig, signature.substr(0, signature.size() / 2));
        refused(run(copy, dir / "k.pub"),
                {copy.string() + ": " + copy_sig.string() + ": not an edgepack signature"});
        test::write_file(copy_sig, std::string(5000, 'x'));
        refused(run(copy, dir / "k.pub"), {copy_sig.string() + ": not an edgepack signature"});
        // --signature names another file; a public key given as the signature is named.
        refused(run(copy, dir / "k.pub", {"--signature", (dir / "k.pub").string()}),
                {"k.pub: not an edgepack signature: it is an edgepack-public-key/1 file"});
    }
    {
        INFO("a truncated, garbage or secret key given as the public key");
        std::string pub = test::read_file(dir / "k.pub");
        test::write_file(dir / "cut.pub", pub.substr(0, 40));
        refused(run(pack, dir / "cut.pub"), {"cut.pub: not an edgepack public key"});
        test::write_file(dir / "junk.pub", "\x89PNG garbage");
        refused(run(pack, dir / "junk.pub"), {"junk.pub: not an edgepack public key"});
        refused(run(pack, dir / "k.key"),
                {"k.key: not an edgepack public key: it is an edgepack-secret-key/1 file"});
        // A key whose id does not match its bytes (a hand-edited or damaged file).
        std::string bad = pub;
        bad[bad.size() - 3] = bad[bad.size() - 3] == 'a' ? 'b' : 'a';
        test::write_file(dir / "bad.pub", bad);
        refused(run(pack, dir / "bad.pub"), {"bad.pub: the file says key id " + id});
        refused(run(pack, dir / "absent.pub"), {"absent.pub: cannot open"});
    }
    {
        INFO("sign with a bad secret key writes nothing");
        fs::copy_file(pack, copy, fs::copy_options::overwrite_existing);
        fs::remove(copy_sig);
        test::write_file(dir / "cut.key", test::read_file(dir / "k.key").substr(0, 50));
        auto s = test::run_edgepack({"sign", copy.string(), "--key", (dir / "cut.key").string()});
        CHECK(s.exit_code == 2);
        CHECK_THAT(s.err, Catch::Contains("cut.key: not an edgepack secret key"));
        s = test::run_edgepack({"sign", copy.string(), "--key", (dir / "k.pub").string()});
        CHECK(s.exit_code == 2);
        CHECK_THAT(s.err, Catch::Contains("it is an edgepack-public-key/1 file"));
        CHECK(!fs::exists(copy_sig));
    }
}
