import { asyncLocalStorage } from '@temporalio/activity';

/** Is this code running as a Temporal activity (not called directly, as the tests and CLI do)? Only then may it heartbeat. */
export const inActivity = () => asyncLocalStorage.getStore() !== undefined;
