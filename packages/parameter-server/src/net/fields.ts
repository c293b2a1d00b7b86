/**
 * Checking the fields of a decoded msgpack header: nothing received is trusted, so every field is
 * read through one of these, which throw a PsError naming the field, what was expected and what was
 * found. Shared by the frame codec (a message in parts) and the protocol (every message type).
 */
import { PsError } from './errors.js';

/** A decoded header: a msgpack map, before its fields are checked. */
export type Fields = Record<string, unknown>;

export function isFields(h: unknown): h is Fields {
  return typeof h === 'object' && h !== null && !Array.isArray(h) && !ArrayBuffer.isView(h);
}

/** Field `key` as an integer in [min, max]; throws PsError('bad-request'). */
export function int(h: Fields, key: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const v = h[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new PsError('bad-request', `${String(h.type)}: ${key} must be an integer in [${min}, ${max}], got ${describe(v)}`);
  }
  return v;
}

/** Field `key` as a string of at most `maxLength` characters; throws PsError('bad-request'). */
export function str(h: Fields, key: string, maxLength: number): string {
  const v = h[key];
  if (typeof v !== 'string' || v.length > maxLength) {
    throw new PsError('bad-request', `${String(h.type)}: ${key} must be a string of at most ${maxLength} characters, got ${describe(v)}`);
  }
  return v;
}

/** A received value, short enough for an error message (long strings by their length only). */
export function describe(v: unknown): string {
  if (typeof v === 'string') return v.length > 40 ? `a ${v.length}-character string` : JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === null || v === undefined) return String(v);
  return Array.isArray(v) ? 'an array' : typeof v;
}
