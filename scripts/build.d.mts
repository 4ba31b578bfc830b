/** Compiles src/ to dist/ (see build.mjs); resolves to the number of files compiled. */
export function build(): Promise<number>;
