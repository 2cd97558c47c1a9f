/** A user id that says what it is: named by its `toString`. */
export class UserId {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  toString() {
    return this.#value;
  }
}

/** A user id whose state is private and that says nothing: no owner can be named by it. */
export class Opaque {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  get value() {
    return this.#value;
  }
}
