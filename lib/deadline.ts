/**
 * One deadline per task run, which every loop, poll, retry and request checks: a wait can never
 * outlive it, however a server behaves. `signal` aborts when it passes, so a request in flight
 * (fetch, http.request, a child process) ends with it.
 *
 * @example
 *   const deadline = Deadline.after(10 * 60_000, "the task's timeoutMinutes (10)");
 *   while (!done) {
 *     deadline.check('waiting for the run to end');
 *     await deadline.sleep(5000);
 *   }
 */

export class DeadlineError extends Error {
  override readonly name = 'DeadlineError';
  readonly code = 'DEADLINE';
  constructor(
    message: string,
    /** What set the deadline, for the user ("timeoutMinutes (10)"). */
    readonly source: string,
  ) {
    super(message);
  }
}

export class Deadline {
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout | undefined;

  private constructor(
    /** Epoch milliseconds; Infinity for none. */
    readonly at: number,
    /** What set it, named in errors: "timeoutMinutes (10)". */
    readonly source: string,
  ) {
    if (Number.isFinite(at)) {
      this.timer = setTimeout(() => this.controller.abort(this.error('waiting')), Math.max(0, at - Date.now()));
      // A deadline alone must not keep the process alive.
      this.timer.unref();
    }
  }

  static after(ms: number, source: string): Deadline {
    return new Deadline(Date.now() + Math.max(0, ms), source);
  }

  static never(): Deadline {
    return new Deadline(Infinity, 'no deadline');
  }

  /** Aborts when the deadline passes. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  remainingMs(): number {
    return Math.max(0, this.at - Date.now());
  }

  expired(): boolean {
    return Date.now() >= this.at;
  }

  /** Throws a DeadlineError naming `doing` once the deadline has passed. */
  check(doing: string): void {
    if (this.expired()) throw this.error(doing);
  }

  /** The error for `doing` at this deadline. */
  error(doing: string): DeadlineError {
    return new DeadlineError(`Stopped ${doing}: the time allowed by ${this.source} ran out.`, this.source);
  }

  /** The earlier of this deadline and `ms` from now (one request's own limit, say). */
  within(ms: number, source: string): Deadline {
    return Date.now() + ms < this.at ? Deadline.after(ms, source) : this;
  }

  /** Waits `ms`, or less when the deadline comes first; never throws. */
  sleep(ms: number): Promise<void> {
    const wait = Math.min(Math.max(0, ms), this.remainingMs());
    return new Promise((resolve) => {
      if (wait <= 0) return resolve();
      const onAbort = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.signal.removeEventListener('abort', onAbort);
        resolve();
      }, wait);
      this.signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Stops the timer (the deadline still answers `expired`). */
  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
  }
}
