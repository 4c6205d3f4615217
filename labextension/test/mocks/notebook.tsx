/** A stand-in for @jupyterlab/notebook in unit tests. */
export const NotebookActions = { run: jest.fn(), insertBelow: jest.fn() };
export class NotebookPanel {}
