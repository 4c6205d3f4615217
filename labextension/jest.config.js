/**
 * Unit tests of the panel: its state logic, PanelModel with a mocked API client, and its React
 * components with testing-library (jsdom). JupyterLab's own packages are ES modules that jest
 * would have to transform; the tests map the few the panel's code imports to small stand-ins
 * (test/mocks/): what is tested is the panel's code, not JupyterLab's.
 */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  transform: {
    '^.+\\.tsx?$': ['ts-jest', { tsconfig: 'tsconfig.test.json' }]
  },
  moduleNameMapper: {
    '^@jupyterlab/(apputils|coreutils|notebook|services|ui-components)$':
      '<rootDir>/test/mocks/$1.tsx',
    '\\.svg$': '<rootDir>/test/mocks/svg.ts'
  }
};
