/** --json prints the value as JSON; otherwise the command's own human-readable lines. */
export function printJsonOr(json: boolean, value: unknown, human: () => void): void {
  if (json) console.log(JSON.stringify(value, null, 2));
  else human();
}
