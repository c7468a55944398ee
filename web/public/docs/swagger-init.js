// Starts Swagger UI on the gateway's own OpenAPI document. A file, not an inline
// script: the Content-Security-Policy allows scripts from this origin only.
window.addEventListener("load", () => {
  window.ui = window.SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui" });
});
