/** A stand-in for @jupyterlab/coreutils in unit tests. */
export const URLExt = { join: (...parts: string[]) => parts.join('/') };
