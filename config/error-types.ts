/**
 * Failure type of a wrong setting (bad credentials, a missing grant, an invalid input, a missing
 * table): no retry can fix it. The activity interceptor raises it (activities/errors.ts), workflows
 * list it as non-retryable (workflows/activity-options.ts). A plain string: workflow code imports it.
 */
export const CONFIGURATION_ERROR_TYPE = 'ConfigurationError';
