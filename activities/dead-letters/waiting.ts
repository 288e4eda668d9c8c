/**
 * Which dead letters still wait for an operator: neither applied by a retry nor discarded
 * (migration 013). One definition for the list, the retry, `ops status` and the worker's
 * fresh_badges_dead_letters_waiting gauge, so they never disagree about what is left.
 */
export const WAITING_DEAD_LETTER = 'retried_at is null and discarded_at is null';
