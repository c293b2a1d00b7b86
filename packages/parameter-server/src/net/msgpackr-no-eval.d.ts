// msgpackr's build without `new Function` (its record reader otherwise compiles code from key names
// it received); the same API as the main entry, which has no types for this path.
declare module 'msgpackr/index-no-eval' {
  export { Packr, Unpackr } from 'msgpackr';
}
