/** Root hooks for every test file (loaded through .mocharc.json's `require`). */
import { removeMadeWorkDirs } from '../testkit/harness/agent';

export const mochaHooks = {
  afterEach(): void {
    removeMadeWorkDirs();
  },
};
