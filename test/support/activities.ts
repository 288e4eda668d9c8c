/** The pipeline's activities for a test: real clients, each call in an activity context (scripts/lib/local-activities.ts). */
import { ActivityClients, createActivities } from '../../activities';
import { localActivities } from '../../scripts/lib/local-activities';

export const activitiesFor = (clients: ActivityClients) => localActivities(createActivities(clients));
