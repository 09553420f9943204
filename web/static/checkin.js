// nalgae check-in page: scan a pass's QR code with the phone's camera where the browser has
// BarcodeDetector; otherwise the code is typed. A static file: the page has no inline script.
(function () {
  "use strict";
  var form = document.getElementById("checkin-form");
  var button = document.getElementById("scan");
  var video = document.getElementById("scanner");
  var input = document.getElementById("checkin-code");
  if (!form || !button || !video || !input) return;
  if (!("BarcodeDetector" in window) || !navigator.mediaDevices) {
    var note = document.getElementById("scan-unavailable");
    if (note) note.hidden = false;
    return;
  }
  button.hidden = false;
  var detector = new window.BarcodeDetector({formats: ["qr_code"]});
  var stream = null;

  function stop() {
    if (stream) stream.getTracks().forEach(function (t) { t.stop(); });
    stream = null;
    video.hidden = true;
  }

  function look() {
    if (!stream) return;
    detector.detect(video).then(function (codes) {
      var found = codes.map(function (c) { return c.rawValue || ""; })
        .filter(function (v) { return v.indexOf("NALGAE-EVENT:") === 0; })[0];
      if (found) {
        input.value = found.slice("NALGAE-EVENT:".length);
        stop();
        form.submit();
      } else {
        window.setTimeout(look, 200);
      }
    }).catch(function () { window.setTimeout(look, 500); });
  }

  button.addEventListener("click", function () {
    if (stream) { stop(); return; }
    navigator.mediaDevices.getUserMedia({video: {facingMode: "environment"}, audio: false})
      .then(function (s) {
        stream = s;
        video.srcObject = s;
        video.hidden = false;
        return video.play();
      })
      .then(look)
      .catch(function () { stop(); });
  });
})();
