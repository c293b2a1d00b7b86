// Runs a kernel suite on every code path of the native addon and on 'auto' (small calls routed to
// TypeScript), as the row-kernel and plane-kernel tests do.
import { describe } from 'vitest';
import { loadNativeBackend, nativeIsas, nativePath } from './native-backend.js';
import { defaultBackend, rowKernelsOf, type RowKernels } from './select.js';

export function onEveryNativePath(suite: (getKernels: () => RowKernels) => void, auto = "'auto' (small calls in TypeScript)"): void {
  for (const isa of nativeIsas()) {
    describe(`native-${isa}`, () => {
      const native = loadNativeBackend({ isa });
      suite(() => {
        if (native === null) throw new Error(`${nativePath.pathname} offers '${isa}' but did not load it`);
        return rowKernelsOf(native);
      });
    });
  }
  describe(auto, () => suite(() => rowKernelsOf(defaultBackend('auto'))));
}
