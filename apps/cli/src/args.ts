/**
 * Command-line flags and config files. Flags are parsed strictly with Node's util.parseArgs (an
 * unknown flag is an error), every value is validated here with a message naming the flag, and a
 * `--config FILE.json` supplies defaults that flags override.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { UsageError } from './errors.js';

export type FlagType = 'string' | 'int' | 'number' | 'boolean';

export interface FlagSpec {
  type: FlagType;
  /** Shown in --help. */
  help: string;
  /** The placeholder in --help, e.g. N or FILE. */
  arg?: string;
  default?: string | number | boolean;
  /** Allowed values (strings). */
  choices?: readonly string[];
  /** Lower bound for numbers (inclusive unless `exclusiveMin`). */
  min?: number;
  exclusiveMin?: boolean;
  /** Whether it may come from a config file (as its camelCase key). */
  configurable?: boolean;
}

export type Flags = Record<string, FlagSpec>;
export type Values = Record<string, string | number | boolean | undefined>;

/** kebab-case flag → camelCase key, as used in config files: batch-size → batchSize. */
export const camel = (flag: string): string => flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

function convert(flag: string, spec: FlagSpec, raw: unknown, where: string): string | number | boolean {
  const name = `${where}${flag}`;
  if (spec.type === 'boolean') {
    if (typeof raw !== 'boolean') throw new UsageError(`${name} must be true or false, got ${JSON.stringify(raw)}`);
    return raw;
  }
  if (spec.type === 'string') {
    if (typeof raw !== 'string' || raw === '') throw new UsageError(`${name} needs a value`);
    if (spec.choices && !spec.choices.includes(raw)) {
      throw new UsageError(`${name} must be one of ${spec.choices.join(', ')}, got '${raw}'`);
    }
    return raw;
  }
  const n = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
  if (!Number.isFinite(n)) throw new UsageError(`${name} must be a number, got ${JSON.stringify(raw)}`);
  if (spec.type === 'int' && !Number.isInteger(n)) throw new UsageError(`${name} must be an integer, got ${JSON.stringify(raw)}`);
  if (spec.min !== undefined && (spec.exclusiveMin ? n <= spec.min : n < spec.min)) {
    throw new UsageError(`${name} must be ${spec.exclusiveMin ? 'greater than' : 'at least'} ${spec.min}, got ${n}`);
  }
  return n;
}

/**
 * Parses `argv` against `flags`, reading `--config FILE` first when the command accepts one.
 * Precedence: flags, then the config file, then defaults.
 */
export function parseFlags(command: string, argv: string[], flags: Flags): Values {
  const options: Record<string, { type: 'string' | 'boolean' }> = { help: { type: 'boolean' } };
  for (const [flag, spec] of Object.entries(flags)) options[flag] = { type: spec.type === 'boolean' ? 'boolean' : 'string' };
  let parsed: Record<string, unknown>;
  try {
    parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values;
  } catch (e) {
    throw new UsageError(`loom ${command}: ${(e as Error).message.replace(/\n/g, ' ')}`);
  }
  const out: Values = { help: parsed.help === true };
  if (out.help) return out;

  let config: Record<string, unknown> = {};
  if ('config' in flags && typeof parsed.config === 'string') config = readConfig(parsed.config, flags);
  for (const [flag, spec] of Object.entries(flags)) {
    const key = camel(flag);
    if (parsed[flag] !== undefined) out[key] = convert(flag, spec, parsed[flag], '--');
    else if (config[key] !== undefined) out[key] = convert(key, spec, config[key], `${String(parsed.config)}: `);
    else out[key] = spec.default;
  }
  return out;
}

/** Reads a JSON config file whose keys are the camelCase names of configurable flags. */
function readConfig(path: string, flags: Flags): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UsageError(`--config: cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let config: unknown;
  try {
    config = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${path}: not valid JSON (${(e as Error).message})`);
  }
  if (config === null || typeof config !== 'object' || Array.isArray(config)) throw new UsageError(`${path}: must hold a JSON object`);
  const allowed = Object.entries(flags).filter(([, s]) => s.configurable).map(([f]) => camel(f));
  for (const key of Object.keys(config)) {
    if (!allowed.includes(key)) throw new UsageError(`${path}: unknown key '${key}' (allowed: ${allowed.join(', ')})`);
  }
  return config as Record<string, unknown>;
}

/** The --help text of a command. */
export function helpText(command: string, summary: string, flags: Flags, extra = ''): string {
  const rows = Object.entries(flags).map(([flag, s]) => {
    const left = `  --${flag}${s.type === 'boolean' ? '' : ` ${s.arg ?? (s.type === 'string' ? 'VALUE' : 'N')}`}`;
    const def = s.default !== undefined && s.default !== false ? ` (default: ${s.default})` : '';
    return [left, `${s.help}${def}`] as const;
  });
  rows.push(['  --help', 'show this help']);
  const width = Math.max(...rows.map(([l]) => l.length)) + 2;
  return `Usage: loom ${command} [flags]\n\n${summary}\n\nFlags:\n${rows.map(([l, r]) => l.padEnd(width) + r).join('\n')}\n${extra}`;
}
