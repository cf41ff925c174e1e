/** The token other extensions ask for, and that the model the plugin provides fits it. */
import type { AutoShutdownModel } from '../model';
import { IAutoShutdown } from '../tokens';

// Compile-time: the plugin's model is what the token promises (ts-jest type-checks this file).
const fits = (model: AutoShutdownModel): IAutoShutdown => model;

describe('IAutoShutdown', () => {
  it('is a token named after the package, described for the plugin manager', () => {
    expect(IAutoShutdown.name).toBe('jupyter-autoshutdown:IAutoShutdown');
    expect(IAutoShutdown.description).toMatch(/status/);
    expect(typeof fits).toBe('function');
  });
});
