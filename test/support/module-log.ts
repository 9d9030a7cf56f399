// `node --import <this file>` logs every module the process resolves (module-log-hooks.ts).
import { register } from 'node:module';

register(new URL('./module-log-hooks.js', import.meta.url));
