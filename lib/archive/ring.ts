// One fixed buffer that the writer reads files into, in archive order, and frees in the same
// order once their bytes are on disk. Reading every file into a fresh buffer left V8 with a
// gigabyte of short-lived external memory per gigabyte archived, and its lazy collection of it
// pushed peak RSS to about 300 MB; with the ring the raw file data never exceeds its size.

export class Ring {
  private readonly buffer: Buffer;
  private readonly live: Array<{ start: number; end: number }> = [];
  private head = 0;
  /** The newest regions sit before the oldest one (allocation went round the end). */
  private wrapped = false;

  constructor(readonly capacity: number) {
    this.buffer = Buffer.allocUnsafeSlow(capacity);
  }

  get regions(): number {
    return this.live.length;
  }

  /** A region of `size` bytes after all live ones, or null until enough older ones are freed. */
  alloc(size: number): Buffer | null {
    if (size <= 0 || size > this.capacity) throw new RangeError(`ring allocation of ${size} bytes (capacity ${this.capacity})`);
    if (this.live.length === 0) {
      this.head = 0;
      this.wrapped = false;
    }
    const tail = this.live.length > 0 ? this.live[0].start : this.capacity;
    let start: number;
    if (!this.wrapped) {
      if (this.head + size <= this.capacity) start = this.head;
      else if (size <= tail) {
        start = 0;
        this.wrapped = true;
      } else return null;
    } else if (this.head + size <= tail) {
      start = this.head;
    } else {
      return null;
    }
    this.live.push({ start, end: start + size });
    this.head = start + size;
    return this.buffer.subarray(start, start + size);
  }

  /** Frees the oldest live region. */
  free(): void {
    const gone = this.live.shift();
    if (!gone) throw new Error('ring: free without a live region');
    if (this.live.length === 0) {
      this.head = 0;
      this.wrapped = false;
    } else if (this.wrapped && this.live[0].start < gone.start) {
      this.wrapped = false; // the oldest region is now one of those that went round
    }
  }
}
