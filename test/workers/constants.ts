/** The bootstrap secret the workerd tests run with; never a real deployment's. */
export const TEST_BOOTSTRAP_TOKEN = "test-bootstrap-secret-0123456789";
