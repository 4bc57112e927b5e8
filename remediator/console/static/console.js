// Progressive enhancement only: times stay in UTC (24 hours); hovering shows the local time.
document.querySelectorAll("time[datetime]").forEach(function (el) {
  var when = new Date(el.getAttribute("datetime"));
  if (!isNaN(when)) {
    el.title = "local: " + when.toLocaleString([], {hourCycle: "h23", timeZoneName: "short"});
  }
});
