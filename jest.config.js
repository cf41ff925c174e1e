/** Unit tests of the pure front-end logic (src/format.ts); no browser, no JupyterLab. */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/src'],
  transform: { '^.+\\.tsx?$': ['ts-jest', { tsconfig: { module: 'commonjs', esModuleInterop: true, types: ['jest'] } }] },
  testRegex: '__tests__/.*\\.spec\\.ts$'
};
