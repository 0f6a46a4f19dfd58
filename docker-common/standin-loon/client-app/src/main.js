// What Loon's client reads at build time (apps/client/src/stores/misc/configStore.ts and
// datasetSelectionUntrrackedStore.ts), embedded by the build.
const config = {
    serverUrl: import.meta.env.VITE_SERVER_URL,
    useHttp: import.meta.env.VITE_USE_HTTP,
    environment: import.meta.env.VITE_ENVIRONMENT,
    experimentVisibilityControl: import.meta.env.VITE_EXPERIMENT_VISIBILITY_CONTROL,
};
const scheme = config.useHttp?.toLowerCase() === 'true' ? 'http://' : 'https://';
document.getElementById('api').textContent =
    `${scheme}${config.serverUrl.replace('/data', '/api')}`;
window.loonClientConfig = config;
