// Clone buttons of the delivery panel: ask the extension's clone route for JSON and open the
// new draft. Without JavaScript (or if the request fails) the form posts normally and the
// extension redirects back here with a flash message naming the new draft.
document.addEventListener("submit", function (event) {
  var form = event.target;
  var base = document.body.getAttribute("data-campaign-url");
  if (!form.matches(".cr-form--clone") || form.dataset.plainPost || !base || !window.fetch) {
    return;
  }
  event.preventDefault();
  var submitter = event.submitter;
  var fallback = function () {
    form.dataset.plainPost = "1";
    form.requestSubmit(submitter);
  };
  fetch(form.action, {
    method: "POST",
    body: new FormData(form, submitter),
    headers: {"Accept": "application/json"},
    credentials: "same-origin"
  })
    .then(function (response) {
      if (response.status !== 201) { throw new Error(String(response.status)); }
      return response.json();
    })
    .then(function (draft) { window.location.assign(base.replace(/0$/, String(draft.id))); })
    .catch(fallback);
});
