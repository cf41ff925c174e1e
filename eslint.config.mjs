// ESLint for the front end (src/): TypeScript's recommended rules and the Jupyter plugin's
// (@jupyter/eslint-plugin: plugin ids, signal connections, disposables, ...), with Prettier
// owning the formatting (`npm run lint:check` runs both; CI runs it).
import jupyter from '@jupyter/eslint-plugin';
import prettier from 'eslint-config-prettier';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['lib/', 'node_modules/', 'jupyter_autoshutdown/', 'ui-tests/', 'tests/', 'docs/', '*.js', '*.mjs'] },
  ...tseslint.configs.recommended,
  ...jupyter.configs.recommended,
  prettier,
  {
    files: ['src/**/*.ts', 'src/**/*.tsx'],
    rules: {
      // The front end speaks English only, as the server's messages do (no translator is wired).
      'jupyter/no-untranslated-string': 'off',
      // The plugin starts its model and status item at activation: nothing to load later.
      'jupyter/prefer-lazy-imports': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }]
    }
  }
);
