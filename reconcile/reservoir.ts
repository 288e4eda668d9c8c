/**
 * A uniform random sample of at most `size` items of a stream of unknown length (reservoir
 * sampling, Algorithm R): after n offers, each item offered is in the sample with probability
 * size / n.
 */
export class Reservoir<T> {
  readonly items: T[] = [];
  private offered = 0;

  constructor(
    readonly size: number,
    private readonly random: () => number = Math.random,
  ) {}

  offer(item: T): void {
    this.offered++;
    if (this.items.length < this.size) this.items.push(item);
    else {
      const at = Math.floor(this.random() * this.offered);
      if (at < this.size) this.items[at] = item;
    }
  }
}
