/** `npm run build` step: pre-bundle the workflow code for the production worker. */
import { buildWorkflowBundle, DEFAULT_BUNDLE_PATH } from '../worker/workflow-bundle';

const out = process.argv[2] ?? DEFAULT_BUNDLE_PATH;
buildWorkflowBundle(out)
  .then(() => console.log(`workflow bundle written to ${out}`))
  .catch((err) => {
    console.error(`bundling workflows failed: ${err.message}`);
    process.exit(1);
  });
