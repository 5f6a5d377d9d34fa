#include "runtime-check/npy.h"

#include <cstring>

#include "ir/checked.h"
#include "ir/mapped_file.h"
#include "ir/output_file.h"

namespace ep {
namespace {

struct Descr {
    const char* code;
    DType dtype;
};
constexpr Descr kDescrs[] = {
    {"f2", DType::F16}, {"f4", DType::F32}, {"f8", DType::F64}, {"i1", DType::I8},
    {"i2", DType::I16}, {"i4", DType::I32}, {"i8", DType::I64}, {"u1", DType::U8},
    {"u2", DType::U16}, {"u4", DType::U32}, {"u8", DType::U64}, {"b1", DType::Bool},
};

// Finds `'key':` in the header dict and returns the position after the colon.
size_t find_key(const std::string& header, const std::string& key, const std::string& what) {
    for (const char* quote : {"'", "\""}) {
        auto pos = header.find(quote + key + quote);
        if (pos == std::string::npos) continue;
        pos = header.find(':', pos);
        if (pos != std::string::npos) return pos + 1;
    }
    throw InputError(cat(what, ": .npy header has no '", key, "' field"));
}

size_t skip_space(const std::string& s, size_t i) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    return i;
}

}  // namespace

std::string npy_descr(DType dtype) {
    for (const auto& d : kDescrs)
        if (d.dtype == dtype)
            return std::string(dtype == DType::I8 || dtype == DType::U8 || dtype == DType::Bool
                                   ? "|"
                                   : "<") +
                   d.code;
    throw InputError(cat("dtype ", dtype_name(dtype), " cannot be stored in .npy"));
}

Tensor parse_npy(std::span<const std::byte> bytes, const std::string& what) {
    static const char kMagic[] = "\x93NUMPY";
    if (bytes.size() < 10 || std::memcmp(bytes.data(), kMagic, 6) != 0)
        throw InputError(cat(what, ": not a .npy file (bad magic)"));
    auto major = static_cast<uint8_t>(bytes[6]);
    size_t header_len = 0, header_start = 0;
    if (major == 1) {
        header_len = static_cast<size_t>(bytes[8]) | static_cast<size_t>(bytes[9]) << 8;
        header_start = 10;
    } else if (major == 2 || major == 3) {
        if (bytes.size() < 12) throw InputError(cat(what, ": truncated .npy header"));
        for (int i = 0; i < 4; ++i)
            header_len |= static_cast<size_t>(bytes[8 + static_cast<size_t>(i)]) << (8 * i);
        header_start = 12;
    } else {
        throw InputError(cat(what, ": unsupported .npy version ", static_cast<int>(major)));
    }
    if (header_len > bytes.size() - header_start)
        throw InputError(
            cat(what, ": .npy header length ", header_len, " runs past the end of the file"));
    std::string header(reinterpret_cast<const char*>(bytes.data() + header_start), header_len);

    size_t p = skip_space(header, find_key(header, "descr", what));
    if (p >= header.size() || (header[p] != '\'' && header[p] != '"'))
        throw InputError(cat(what, ": .npy 'descr' is not a string"));
    size_t end = header.find(header[p], p + 1);
    if (end == std::string::npos) throw InputError(cat(what, ": .npy 'descr' is unterminated"));
    std::string descr = header.substr(p + 1, end - p - 1);
    if (descr.size() != 3 || (descr[0] != '<' && descr[0] != '|' && descr[0] != '='))
        throw InputError(cat(what, ": .npy dtype '", descr,
                             "' is not supported (little-endian numeric types only)"));
    DType dtype = DType::Undefined;
    for (const auto& d : kDescrs)
        if (descr.substr(1) == d.code) dtype = d.dtype;
    if (dtype == DType::Undefined)
        throw InputError(cat(what, ": .npy dtype '", descr, "' is not supported"));

    p = skip_space(header, find_key(header, "fortran_order", what));
    if (header.compare(p, 5, "False") != 0)
        throw InputError(cat(what, ": Fortran-order .npy arrays are not supported"));

    p = skip_space(header, find_key(header, "shape", what));
    if (p >= header.size() || header[p] != '(')
        throw InputError(cat(what, ": .npy 'shape' is not a tuple"));
    end = header.find(')', p);
    if (end == std::string::npos) throw InputError(cat(what, ": .npy 'shape' is unterminated"));
    std::vector<int64_t> shape;
    std::string dims = header.substr(p + 1, end - p - 1);
    size_t i = 0;
    while (i < dims.size()) {
        i = skip_space(dims, i);
        if (i >= dims.size()) break;
        if (dims[i] < '0' || dims[i] > '9')
            throw InputError(cat(what, ": .npy shape '(", dims, ")' is malformed"));
        uint64_t v = 0;
        while (i < dims.size() && dims[i] >= '0' && dims[i] <= '9') {
            auto next = checked_mul(v, 10);
            if (!next || *next > static_cast<uint64_t>(INT64_MAX) - 9)
                throw InputError(cat(what, ": .npy dimension overflows"));
            v = *next + static_cast<uint64_t>(dims[i++] - '0');
        }
        shape.push_back(static_cast<int64_t>(v));
        i = skip_space(dims, i);
        if (i < dims.size() && dims[i] == ',') ++i;
    }
    auto count = checked_element_count(shape);
    auto nbytes = count ? storage_bytes(dtype, *count) : std::nullopt;
    if (!nbytes) throw InputError(cat(what, ": .npy shape ", shape_string(shape), " overflows"));
    size_t data_start = header_start + header_len;
    if (*nbytes != bytes.size() - data_start)
        throw InputError(cat(what, ": .npy ", dtype_name(dtype), " ", shape_string(shape),
                             " needs ", *nbytes, " bytes of data, the file has ",
                             bytes.size() - data_start));
    Tensor t;
    t.dtype = dtype;
    t.shape = std::move(shape);
    t.data = TensorData::owned(std::vector<std::byte>(
        bytes.begin() + static_cast<std::ptrdiff_t>(data_start), bytes.end()));
    return t;
}

Tensor read_npy(const std::filesystem::path& path) {
    auto file = MappedFile::open(path);
    return parse_npy(file->bytes(), path.string());
}

void write_npy(const Tensor& tensor, const std::filesystem::path& path) {
    std::string dims;
    for (size_t i = 0; i < tensor.shape.size(); ++i)
        dims += (i ? ", " : "") + std::to_string(tensor.shape[i]);
    if (tensor.shape.size() == 1) dims += ",";
    std::string header = "{'descr': '" + npy_descr(tensor.dtype) +
                         "', 'fortran_order': False, 'shape': (" + dims + "), }";
    size_t total = 10 + header.size() + 1;
    header.append((64 - total % 64) % 64, ' ');
    header += '\n';
    OutputFile out(path);
    char preamble[10] = {'\x93',
                         'N',
                         'U',
                         'M',
                         'P',
                         'Y',
                         1,
                         0,
                         static_cast<char>(header.size() & 0xFF),
                         static_cast<char>(header.size() >> 8)};
    out.write(std::string_view(preamble, 10));
    out.write(header);
    out.write(tensor.data.bytes());
    out.commit();
}

}  // namespace ep
