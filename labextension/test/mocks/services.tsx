/** A stand-in for @jupyterlab/services in unit tests: no server is reached. */
export const ServerConnection = {
  makeSettings: () => ({ baseUrl: '/' }),
  makeRequest: () => Promise.reject(new Error('no server in unit tests'))
};
