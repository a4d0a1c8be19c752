// The "FireLens setup" panel: the Fluent Bit configuration, the module build and Envoy's
// access-log settings for the playground's options, after the files in the repository's
// fluent-bit/ folder (envoy-dd.conf, appmesh-access-log.json, task-definition.json).
(function () {
  'use strict';

  const escapeHtml = (text) => text.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
  const block = (title, text, note) =>
    `<div class="setup-block"><h3>${escapeHtml(title)}</h3>${note ? `<p>${note}</p>` : ''}<pre>${escapeHtml(text)}</pre></div>`;
  // A POSIX shell word.
  const shellQuote = (s) => `'${s.replace(/'/g, `'\\''`)}'`;

  // App Mesh's seed JSON format (fluent-bit/appmesh-access-log.json): the keys the transform
  // reads, with the trace headers that give dd.trace_id.
  const APP_MESH_JSON = [
    ['response_code', '%RESPONSE_CODE%'],
    ['method', '%REQ(:METHOD)%'],
    ['path', '%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%'],
    ['duration', '%DURATION%'],
    ['response_duration', '%RESPONSE_DURATION%'],
    ['response_flags', '%RESPONSE_FLAGS%'],
    ['request_id', '%REQ(X-REQUEST-ID)%'],
    ['trace_id', '%REQ(X-DATADOG-TRACE-ID)%'],
    ['span_id', '%REQ(X-DATADOG-PARENT-ID)%'],
    ['x_datadog_tags', '%REQ(X-DATADOG-TAGS)%'],
    ['traceparent', '%REQ(TRACEPARENT)%'],
  ];

  const FLUENT_BIT_CONF = `# envoy-dd for FireLens (classic format: FireLens includes this file into the configuration it
# generates, after its own inputs and ECS metadata filter).
#
# Point the log router's firelensConfiguration at it:
#   "config-file-type": "file", "config-file-value": "/fluent-bit/envoy-dd/envoy-dd.conf"

# hash and phase, from the log router's environment. Add keeps a value the record already has.
[FILTER]
    Name   modify
    Match  *-firelens-*
    Add    hash \${GIT_COMMIT_SHA}
    Add    phase \${DEPLOY_PHASE}

# The transform: dd.trace_id/dd.span_id, Datadog standard attributes, status, message.
[FILTER]
    Name             wasm
    Match            *-firelens-*
    Event_Format     json
    WASM_Path        /fluent-bit/envoy-dd/envoy_dd.wasm
    Function_Name    envoy_dd_filter
    Wasm_Stack_Size  64K

[OUTPUT]
    Name        datadog
    Match       *-firelens-*
    Host        http-intake.logs.datadoghq.com
    TLS         on
    compress    gzip
    apikey      \${DD_API_KEY}
    provider    ecs
    dd_source   envoy
    dd_service  \${DD_SERVICE}
    dd_tags     env:\${DD_ENV}
`;

  window.envoyDdSetup = function setup(state, options) {
    const parts = [];

    // Settings the module cannot take as record keys are built into it.
    const docker = ['docker build -f fluent-bit/Dockerfile'];
    const script = ['bash fluent-bit/build-wasm.sh'];
    if (options.textFormat) {
      docker.push(`--build-arg TEXT_FORMAT=${shellQuote(options.textFormat)}`);
      script.push(`--text-format ${shellQuote(options.textFormat)}`);
    }
    if (options.traceId128 === 'hex') {
      docker.push('--build-arg TRACE_ID_128=hex');
      script.push('--trace-id-128 hex');
    }
    if (options.keepSourceAttributes) {
      docker.push('--build-arg KEEP_SOURCE_ATTRIBUTES=1');
      script.push('--keep-source-attributes');
    }
    docker.push('-t envoy-dd-log-router .');
    const buildText = `# The log router image (Fluent Bit 4.2 with the filter and envoy-dd.conf), from the repository root:\n${docker.join(' \\\n    ')}\n\n` +
      `# or only the module (dist/envoy_dd.wasm), to copy into your own image under /fluent-bit/envoy-dd/:\n${script.join(' \\\n    ')}\n`;
    parts.push(block('1. Build the log router', buildText,
      'Fluent Bit cannot pass parameters to a WASM filter, so the text format, the trace id format and keeping source keys are built into the module (Fluent Bit 4.2 or later).'));

    const fixed = [];
    if (!options.standardAttributes) fixed.push('standard attributes');
    if (!options.status) fixed.push('status');
    if (!options.message) fixed.push('message');
    if (!options.derivePhase) fixed.push('phase derivation');
    const fixedNote = fixed.length
      ? `<strong class="warn">Note:</strong> the Fluent Bit filter always adds ${escapeHtml(fixed.join(', '))}; turning ${fixed.length > 1 ? 'them' : 'it'} off applies to the CLI and the libraries only.`
      : '';
    parts.push(block('2. Fluent Bit configuration (envoy-dd.conf)', FLUENT_BIT_CONF, fixedNote));

    const env = [
      { name: 'GIT_COMMIT_SHA', value: options.hash || '<git commit of the running code>' },
      { name: 'DEPLOY_PHASE', value: options.phase || 'stable' },
      { name: 'DD_SERVICE', value: 'api' },
      { name: 'DD_ENV', value: 'prod' },
    ];
    const logRouter = {
      name: 'log-router',
      image: '<account>.dkr.ecr.<region>.amazonaws.com/envoy-dd-log-router:latest',
      essential: true,
      firelensConfiguration: {
        type: 'fluentbit',
        options: {
          'enable-ecs-log-metadata': 'true',
          'config-file-type': 'file',
          'config-file-value': '/fluent-bit/envoy-dd/envoy-dd.conf',
        },
      },
      environment: env,
      secrets: [{ name: 'DD_API_KEY', valueFrom: '<ARN of the secret holding your Datadog API key>' }],
    };
    parts.push(block('3. Task definition: the log router container', JSON.stringify(logRouter, null, 2),
      `hash and phase reach the filter as record keys, from these variables${options.phase ? '' : ' (no phase chosen: with a task family ending in -canary/-stable the filter derives it; otherwise set DEPLOY_PHASE per deployment)'}. The Envoy container logs with <code>"logConfiguration": { "logDriver": "awsfirelens" }</code>.`));

    const format = options.textFormat
      ? { text: options.textFormat.endsWith('\n') ? options.textFormat : options.textFormat + '\n' }
      : { json: APP_MESH_JSON.map(([key, value]) => ({ key, value })) };
    const appMesh = { logging: { accessLog: { file: { path: '/dev/stdout', format } } } };
    parts.push(block('4a. Envoy access logs with App Mesh (virtual node spec)', JSON.stringify(appMesh, null, 2),
      options.textFormat ? 'Your text format, as App Mesh writes it.' : 'Typed JSON with the trace headers the filter reads (x-datadog-trace-id/parent-id, x-datadog-tags for 128-bit ids, traceparent).'));

    const serviceConnect = {
      serviceConnectConfiguration: {
        enabled: true,
        namespace: '<your Cloud Map namespace>',
        services: ['<your services>'],
        logConfiguration: { logDriver: 'awsfirelens' },
        accessLogConfiguration: { format: options.textFormat ? 'TEXT' : 'JSON', includeQueryParameters: 'ENABLED' },
      },
    };
    parts.push(block('4b. Envoy access logs with ECS Service Connect (service definition)', JSON.stringify(serviceConnect, null, 2),
      'Service Connect\'s Envoy logs in AWS\'s own TEXT or JSON format, which has no trace headers: its records get hash, phase and the standard attributes.'));

    return parts.join('');
  };
})();
