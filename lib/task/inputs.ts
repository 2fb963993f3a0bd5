/**
 * Input parsing with the errors a pipeline author needs: which input, what was given, what is
 * allowed. task-lib gives strings; these turn them into checked values.
 */
import * as path from 'node:path';
import * as tl from 'azure-pipelines-task-lib/task';

export function getString(name: string, required = false): string | undefined {
  const value = tl.getInput(name, false)?.trim();
  if (required && !value) throw new Error(`Input '${name}' is required.`);
  return value || undefined;
}

export function getRequired(name: string): string {
  return getString(name, true) as string;
}

export function getBoolean(name: string, defaultValue: boolean): boolean {
  const value = tl.getInput(name, false)?.trim();
  if (!value) return defaultValue;
  if (/^true$/i.test(value)) return true;
  if (/^false$/i.test(value)) return false;
  throw new Error(`Input '${name}' must be true or false, not '${value}'.`);
}

export function getNumber(name: string, defaultValue: number, range: { min?: number; max?: number; integer?: boolean } = {}): number {
  const raw = tl.getInput(name, false)?.trim();
  if (!raw) return defaultValue;
  const value = Number(raw);
  const kind = range.integer ? 'a whole number' : 'a number';
  if (!Number.isFinite(value) || (range.integer && !Number.isInteger(value))) {
    throw new Error(`Input '${name}' must be ${kind}, not '${raw}'.`);
  }
  if (range.min !== undefined && value < range.min) throw new Error(`Input '${name}' must be at least ${range.min}, not ${raw}.`);
  if (range.max !== undefined && value > range.max) throw new Error(`Input '${name}' must be at most ${range.max}, not ${raw}.`);
  return value;
}

export function getChoice<T extends string>(name: string, choices: readonly T[], defaultValue: T): T {
  const raw = tl.getInput(name, false)?.trim();
  if (!raw) return defaultValue;
  const match = choices.find((c) => c.toLowerCase() === raw.toLowerCase());
  if (!match) throw new Error(`Input '${name}' must be one of ${choices.map((c) => `'${c}'`).join(', ')}, not '${raw}'.`);
  return match;
}

/** Sets an output variable (`isOutput`, so later jobs and stages can read it). */
export function setOutput(name: string, value: string | number | boolean): void {
  tl.setVariable(name, String(value), false, true);
}

/**
 * An optional `filePath` input, or undefined when none was given. The classic editor's file
 * picker left empty arrives as the repository root (System.DefaultWorkingDirectory or
 * Build.SourcesDirectory), as task-lib's filePathSupplied knows: that is no file.
 */
export function getFilePath(name: string): string | undefined {
  const value = getString(name);
  if (!value) return undefined;
  const roots = ['System.DefaultWorkingDirectory', 'Build.SourcesDirectory'].map((v) => tl.getVariable(v)).filter((v): v is string => !!v);
  const same = (a: string, b: string) => path.resolve(a).replace(/[\\/]+$/, '') === path.resolve(b).replace(/[\\/]+$/, '');
  return roots.some((root) => same(value, root)) ? undefined : value;
}
