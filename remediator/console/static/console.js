// Progressive enhancement only: show times in the browser's zone (UTC stays in the title).
document.querySelectorAll("time[datetime]").forEach(function (el) {
  var when = new Date(el.getAttribute("datetime"));
  if (!isNaN(when)) { el.textContent = when.toLocaleString(); }
});
