import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Random } from '../random.js';
import { IntTensor, Tensor } from '../autograd/tensor.js';
import { mlp } from '../nn/mlp.js';
import { decodeSafetensors, encodeSafetensors, loadSafetensors, saveSafetensors } from './safetensors.js';
import { loadModel, saveModel } from './model.js';

const dir = mkdtempSync(join(tmpdir(), 'loom-st-'));

function withHeader(header: object, data = new Uint8Array(0), declaredLength?: number): Uint8Array {
  const json = Buffer.from(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(declaredLength ?? json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

describe('safetensors', () => {
  it('round-trips float and int tensors, metadata and key order', () => {
    const rng = new Random(1);
    const tensors = { b: Tensor.uniform([3, 5], rng), a: IntTensor.from([1, -2, 3]), scalar: Tensor.from(2.5) };
    const bytes = encodeSafetensors(tensors, { step: '7' });
    const headerLen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect((8 + headerLen) % 8).toBe(0); // data section aligned, as the format recommends
    const back = decodeSafetensors(bytes);
    expect(Object.keys(back.tensors)).toEqual(['b', 'a', 'scalar']);
    expect(back.metadata).toEqual({ step: '7' });
    expect(back.tensors.b!.data).toEqual(tensors.b.data);
    expect(back.tensors.b!.shape).toEqual([3, 5]);
    expect(back.tensors.a).toBeInstanceOf(IntTensor);
    expect(Array.from(back.tensors.a!.data)).toEqual([1, -2, 3]);
    expect(back.tensors.scalar!.shape).toEqual([]);
  });

  it('writes views of a larger buffer correctly', () => {
    const big = new Float32Array(new SharedArrayBuffer(40)).map((_, i) => i);
    const view = new Tensor(big.subarray(3, 7), [2, 2]);
    expect(Array.from(decodeSafetensors(encodeSafetensors({ v: view })).tensors.v!.data)).toEqual([3, 4, 5, 6]);
  });

  it('saves a model and loads it into another by name', () => {
    const a = mlp([7, 5, 3], { rng: new Random(1) });
    const b = mlp([7, 5, 3], { rng: new Random(2) });
    const path = join(dir, 'model.safetensors');
    saveModel(path, a, { note: 'hi' });
    expect(existsSync(`${path}.tmp-${process.pid}`)).toBe(false);
    expect(loadModel(path, b)).toEqual({ note: 'hi' });
    expect(b.parameters().map((p) => p.toArray())).toEqual(a.parameters().map((p) => p.toArray()));
    expect(() => loadModel(path, mlp([7, 6, 3]))).toThrow(new RegExp(`${path}: '0.weight' has shape \\[5, 7\\], the model's parameter has shape \\[6, 7\\]`));
  });

  describe('rejects malformed files with the file and field named', () => {
    const cases: Array<[string, Uint8Array, RegExp]> = [
      ['too short', new Uint8Array(5), /x.st: file is 5 bytes, too short/],
      ['header longer than the file', withHeader({}, new Uint8Array(0), 1000), /x.st: header length 1000 exceeds the \d+ bytes after it/],
      ['header not JSON', (() => { const b = withHeader({ a: 1 }); b[9] = 0x7b; b[10] = 0x7b; return b; })(), /x.st: header is not valid JSON/],
      ['unknown dtype', withHeader({ w: { dtype: 'Q8', shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1)), /tensor 'w': unsupported dtype "Q8"/],
      ['bad shape', withHeader({ w: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, new Uint8Array(4)), /tensor 'w': shape \[-1\] is not a list/],
      ['size mismatch', withHeader({ w: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 12] } }, new Uint8Array(12)), /tensor 'w': data_offsets \[0, 12\] hold 12 bytes but F32 \[2, 2\] needs 16/],
      ['truncated data', withHeader({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, new Uint8Array(8)), /tensor 'w': data ends at byte 16 but the data section has only 8 bytes \(truncated file\)/],
      ['overlap', withHeader({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, new Uint8Array(12)), /tensors 'a' and 'b' overlap/],
      ['bad metadata', withHeader({ __metadata__: { a: 1 } }), /__metadata__ must map strings to strings/],
    ];
    for (const [name, bytes, message] of cases) it(name, () => expect(() => decodeSafetensors(bytes, 'x.st')).toThrow(message));

    it('a truncated real file', () => {
      const path = join(dir, 'trunc.safetensors');
      saveSafetensors(path, { w: Tensor.zeros([10, 10]) });
      const full = readFileSync(path);
      writeFileSync(path, full.subarray(0, full.length - 7));
      expect(() => loadSafetensors(path)).toThrow(/trunc.safetensors: tensor 'w': data ends at byte 400 but the data section has only 393 bytes/);
    });
    it('a missing file', () => expect(() => loadSafetensors(join(dir, 'nope.safetensors'))).toThrow(/nope.safetensors: cannot read \(ENOENT\)/));
  });

  it('reads F64, F16, BF16 and I64 as written by other tools', () => {
    const f64 = new Float64Array([1.5, -2.25]);
    const f16 = new Uint16Array([0x3c00, 0xc000]); // 1, -2
    const bf16 = new Uint16Array([0x3f80, 0x4040]); // 1, 3
    const i64 = new BigInt64Array([5n, -6n]);
    const data = new Uint8Array([...new Uint8Array(f64.buffer), ...new Uint8Array(f16.buffer), ...new Uint8Array(bf16.buffer), ...new Uint8Array(i64.buffer)]);
    const st = decodeSafetensors(withHeader({
      d: { dtype: 'F64', shape: [2], data_offsets: [0, 16] },
      h: { dtype: 'F16', shape: [2], data_offsets: [16, 20] },
      b: { dtype: 'BF16', shape: [2], data_offsets: [20, 24] },
      l: { dtype: 'I64', shape: [2], data_offsets: [24, 40] },
    }, data));
    expect(Array.from(st.tensors.d!.data)).toEqual([1.5, -2.25]);
    expect(Array.from(st.tensors.h!.data)).toEqual([1, -2]);
    expect(Array.from(st.tensors.b!.data)).toEqual([1, 3]);
    expect(Array.from(st.tensors.l!.data)).toEqual([5, -6]);
  });
});
