// The stand-in client's build: like vite, it replaces import.meta.env.VITE_* in the source
// with the values of the build's environment, so the bundle holds what the image was built
// for (tests read dist/assets/index.js back from the image). No dependency, no registry.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';

const source = readFileSync('src/main.js', 'utf8');
const bundle = source.replace(/import\.meta\.env\.(VITE_[A-Z_]+)/g,
    (_, name) => JSON.stringify(process.env[name] ?? ''));
mkdirSync('dist/assets', { recursive: true });
writeFileSync('dist/assets/index.js', bundle);
writeFileSync('dist/index.html', readFileSync('index.html', 'utf8'));
console.log('stand-in client built: dist/index.html, dist/assets/index.js');
