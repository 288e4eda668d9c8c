/** `work`, with `beat` called every `everyMs` until it settles: a heartbeat while a step says nothing. */
export async function keptAlive<T>(work: Promise<T>, beat: () => void, everyMs: number): Promise<T> {
  const timer = setInterval(beat, everyMs);
  try {
    return await work;
  } finally {
    clearInterval(timer);
  }
}
