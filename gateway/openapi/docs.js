// Swagger UI on the gateway's own OpenAPI documents. A file, not an inline script, so the page's
// Content-Security-Policy can allow scripts from this origin only. No validator badge: it would
// send the spec to a public validator.
window.addEventListener("load", () => {
  window.ui = SwaggerUIBundle({
    urls: [
      { url: "/docs/operator-api-v1.yaml", name: "Operator API" },
      { url: "/docs/operator-wallet-v1.yaml", name: "Operator Wallet API" },
    ],
    "urls.primaryName": "Operator API",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    plugins: [SwaggerUIBundle.plugins.DownloadUrl],
    layout: "StandaloneLayout",
  });
});
