// Step one of `npm run build`: bundles src/ and its imports into one ES module,
// build/bundle.js. Spin's esbuild plugin adds the glue that serves `fetch`
// events from wasi:http. Step two, j2w (ComponentizeJS), makes dist/app.wasm.
import { mkdirSync } from 'node:fs';
import { build } from 'esbuild';
import { SpinEsbuildPlugin } from '@spinframework/build-tools/plugins/esbuild/index.js';

mkdirSync('dist', { recursive: true });
await build({
  entryPoints: ['./src/index.js'],
  outfile: './build/bundle.js',
  bundle: true,
  format: 'esm',
  platform: 'node',
  logLevel: 'error',
  plugins: [await SpinEsbuildPlugin()],
});
