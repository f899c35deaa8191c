// A FIFO queue with O(1) push/shift and O(1) removal of an entry by its handle (for timeouts, disconnects).

export interface QueueEntry<T> {
  value: T;
  prev: QueueEntry<T> | null;
  next: QueueEntry<T> | null;
  queued: boolean;
}

export class Fifo<T> {
  private head: QueueEntry<T> | null = null;
  private tail: QueueEntry<T> | null = null;
  size = 0;

  push(value: T): QueueEntry<T> {
    const e: QueueEntry<T> = { value, prev: this.tail, next: null, queued: true };
    if (this.tail) this.tail.next = e;
    else this.head = e;
    this.tail = e;
    this.size++;
    return e;
  }

  shift(): T | undefined {
    const e = this.head;
    if (!e) return undefined;
    this.remove(e);
    return e.value;
  }

  peek(): T | undefined {
    return this.head?.value;
  }

  remove(e: QueueEntry<T>): void {
    if (!e.queued) return;
    e.queued = false;
    if (e.prev) e.prev.next = e.next;
    else this.head = e.next;
    if (e.next) e.next.prev = e.prev;
    else this.tail = e.prev;
    e.prev = e.next = null;
    this.size--;
  }

  *[Symbol.iterator](): IterableIterator<T> {
    for (let e = this.head; e; e = e.next) yield e.value;
  }
}
