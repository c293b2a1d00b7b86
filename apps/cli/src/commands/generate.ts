/**
 * `loom generate`: samples text from a language-model run, writing each character to standard
 * output as it is drawn.
 *
 * Characters of the prompt outside the run's vocabulary are an error naming them (exit 2): the
 * model has no embedding for them, and silently dropping or mapping them would change the prompt.
 * An empty prompt is refused too: the model needs at least one token to condition on. A prompt
 * longer than the context is read through its last T characters, as every later step is.
 */
import { IntTensor, Random, Tensor, noGrad } from '@loom/tensor-core';
import { CharVocab } from '@loom/data';
import { helpText, parseFlags, type Flags } from '../args.js';
import { UsageError } from '../errors.js';
import { resolveModel } from '../models.js';
import { loadRun } from '../run-dir.js';

export const GENERATE_FLAGS: Flags = {
  run: { type: 'string', arg: 'DIR', help: 'a run directory written by loom train --task lm (required)' },
  prompt: { type: 'string', arg: 'TEXT', help: 'the text to continue (required; every character must be in the run\'s vocabulary)' },
  tokens: { type: 'int', arg: 'N', default: 200, min: 1, help: 'characters to generate' },
  temperature: { type: 'number', arg: 'T', default: 1, min: 0, help: 'divides the logits before sampling; 0 picks the most likely character' },
  'top-k': { type: 'int', arg: 'K', min: 1, help: 'sample only among the K most likely characters (default: all)' },
  seed: { type: 'int', default: 42, min: 0, help: 'seeds the sampling: the same seed, run and prompt give the same text' },
};

export const GENERATE_HELP = helpText(
  'generate',
  'Continues a prompt with a language model trained by `loom train --task lm`, streaming the text.',
  GENERATE_FLAGS,
  '\nExample:\n  loom generate --run runs/gpt --prompt "sports: " --tokens 200 --temperature 0.8 --top-k 10 --seed 1\n',
);

/** Draws `n` characters after `prompt`; calls `write` with each as soon as it is drawn, and returns them all. */
export function sample(
  model: { forward(x: IntTensor): Tensor },
  vocab: CharVocab,
  context: number,
  prompt: string,
  o: { tokens: number; temperature: number; topK?: number; seed: number },
  write: (s: string) => void,
): string {
  const ids = Array.from(vocab.encode(prompt));
  const rng = new Random(o.seed);
  const v = vocab.size;
  const probs = new Float64Array(v);
  let out = '';
  noGrad(() => {
    for (let i = 0; i < o.tokens; i++) {
      const window = ids.slice(-context);
      const logits = model.forward(new IntTensor(Int32Array.from(window), [1, window.length])); // (1, t, V)
      const last = logits.data.subarray((window.length - 1) * v, window.length * v);
      let next: number;
      if (o.temperature === 0) {
        next = 0;
        for (let j = 1; j < v; j++) if (last[j]! > last[next]!) next = j;
      } else {
        // Keep the top k logits (ties at the k-th included), softmax at the temperature, draw.
        let floor = -Infinity;
        if (o.topK !== undefined && o.topK < v) floor = [...last].sort((a, b) => b - a)[o.topK - 1]!;
        let max = -Infinity;
        for (let j = 0; j < v; j++) if (last[j]! >= floor) max = Math.max(max, last[j]!);
        let total = 0;
        for (let j = 0; j < v; j++) total += probs[j] = last[j]! >= floor ? Math.exp((last[j]! - max) / o.temperature) : 0;
        let u = rng.next() * total;
        next = v - 1;
        for (let j = 0; j < v; j++) {
          u -= probs[j]!;
          if (u < 0 && probs[j]! > 0) {
            next = j;
            break;
          }
        }
      }
      ids.push(next);
      const ch = vocab.decode([next]);
      out += ch;
      write(ch);
    }
  });
  return out;
}

export function generateCommand(argv: string[], log: (line: string) => void = console.log, write: (s: string) => void = (s) => process.stdout.write(s)): { text: string } | null {
  const f = parseFlags('generate', argv, GENERATE_FLAGS);
  if (f.help) {
    log(GENERATE_HELP);
    return null;
  }
  if (f.run === undefined) throw new UsageError('--run DIR is required');
  if (f.prompt === undefined || f.prompt === '') throw new UsageError('--prompt TEXT is required (at least one character to continue)');
  const { config, model } = loadRun(f.run as string);
  const spec = resolveModel(config.model.spec);
  if (spec.kind !== 'gpt' || config.preprocessing.kind !== 'text') throw new UsageError(`--run ${String(f.run)} holds ${config.model.spec}, not a language model (train one with --task lm --model gpt:L,C,H,T)`);
  const vocab = new CharVocab(config.preprocessing.chars);
  const prompt = f.prompt as string;
  const unknown = vocab.unknown(prompt);
  if (unknown.length > 0) {
    throw new UsageError(`--prompt has characters outside the run's vocabulary: ${unknown.map((c) => JSON.stringify(c)).join(', ')} (the vocabulary: ${JSON.stringify(vocab.chars)})`);
  }
  write(prompt);
  const text = sample(model as unknown as { forward(x: IntTensor): Tensor }, vocab, spec.gpt!.context, prompt, {
    tokens: f.tokens as number, temperature: f.temperature as number, seed: f.seed as number, ...(f.topK !== undefined ? { topK: f.topK as number } : {}),
  }, write);
  write('\n');
  return { text };
}
