#!/usr/bin/env python3
"""Sweep of damaged .epk files through a reader binary (the ASAN build of
edgepack_epk_dump): truncations, ~200 flipped bytes, resealed header fields, manifest
mutations and pathological JSON. Every case must exit 2 without a sanitizer report.

    epk_hostile_sweep.py BUILD/tests/edgepack_epk_dump GOOD.epk
"""
import hashlib, json, os, struct, subprocess, sys, tempfile
dump, src = sys.argv[1], sys.argv[2]
good = open(src, 'rb').read()
def reseal(b):
    b = bytearray(b); b[-32:] = hashlib.sha256(bytes(b[:-32])).digest(); return bytes(b)
mo, ml = struct.unpack_from('<QQ', good, 16)
man = json.loads(good[mo:mo+ml])
def with_manifest(text):
    b = bytearray(good[:mo] + text + b'\0'*32)
    struct.pack_into('<Q', b, 24, len(text)); struct.pack_into('<Q', b, 48, len(b)); return reseal(b)
def edit(f):
    m = json.loads(json.dumps(man)); f(m); return with_manifest(json.dumps(m).encode())
cases = []
for size in [0, 8, 64, 95, 96, len(good)//2, len(good)-1]: cases.append(good[:size])
for at in range(0, len(good), max(1, len(good)//200)):
    b = bytearray(good); b[at] ^= 0x55; cases.append(bytes(b))
for at, v in [(8, 2), (12, 1), (16, 0), (24, 1 << 63), (32, 0), (40, 1 << 40), (48, 7), (56, 1)]:
    b = bytearray(good); struct.pack_into('<Q' if at >= 16 else '<I', b, at, v); cases.append(reseal(b))
t = man['tensors']
mutations = [
    lambda m: m['tensors'][0].__setitem__('offset', 2**64 - 64),
    lambda m: m['tensors'][0].__setitem__('offset', 8),
    lambda m: m['tensors'][0].__setitem__('shape', [2**62, 2**62]),
    lambda m: m['tensors'][0].__setitem__('shape', [0]),
    lambda m: m['tensors'][0].__setitem__('shape', [1]*100),
    lambda m: m['tensors'][0].__setitem__('dtype', 'string'),
    lambda m: m['tensors'][0].__setitem__('encoding', {'name': 'int4g32', 'axis': 0}),
    lambda m: m['tensors'][0].__setitem__('encoding', {'name': 'int8c', 'axis': 1}),
    lambda m: m['tensors'][0].__setitem__('bytes', 2**64 - 1),
    lambda m: m['tensors'].append(dict(m['tensors'][0])),
    lambda m: m['model']['graph'].__setitem__('initializers', [2**64 - 1]),
    lambda m: m['model']['graph'].__setitem__('initializers', [-1]),
    lambda m: m['model']['graph'].__setitem__('nodes', [{'name': 1}]),
    lambda m: m['model'].__setitem__('metadata', [[1, 2, 3]]),
    lambda m: m['model']['graph'].__setitem__('inputs', [{'name': 'x', 'doc_string': '', 'type': {'tensor': True, 'elem': 'f32', 'shape': [{'value': 2**64 - 1}], 'denotation': '', 'opaque': {'base64': 'A==='}}}]),
    lambda m: m.__setitem__('tensors', 5),
    lambda m: m['model'].__setitem__('training_info', [{'base64': 'QUJD'}, {'base64': 'Q'}]),
]
for f in mutations: cases.append(edit(f))
cases.append(with_manifest(b'[' * 100000))
cases.append(with_manifest(b'{"a":' * 1000 + b'1' + b'}' * 1000))
cases.append(with_manifest(b'\xff\xfe'))
bad = 0
h_path = os.path.join(tempfile.mkdtemp(), 'h.epk')
for i, c in enumerate(cases):
    open(h_path, 'wb').write(c)
    r = subprocess.run([dump, h_path], capture_output=True, text=True, errors='replace')
    if r.returncode != 2 or 'Sanitizer' in r.stderr or 'runtime error' in r.stderr:
        bad += 1; print('case', i, 'exit', r.returncode, r.stderr[-300:])
print(len(cases), 'cases,', bad, 'not refused cleanly')
sys.exit(1 if bad else 0)
