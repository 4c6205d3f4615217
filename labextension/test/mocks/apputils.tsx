/** A stand-in for @jupyterlab/apputils in unit tests. */
export const Notification = {
  success: jest.fn(),
  info: jest.fn(),
  warning: jest.fn(),
  error: jest.fn()
};
export const Dialog = { okButton: jest.fn(), cancelButton: jest.fn() };
export const showDialog = jest.fn();
export class MainAreaWidget {}
