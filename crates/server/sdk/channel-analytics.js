/* Tracklog channel analytics SDK: initLogAnalytics and logAnalyticsEvent
 * for channel providers embedded in an agent desktop. No dependencies.
 *
 *   <script src="https://tracklog.example/sdk/channel-analytics.js"></script>
 *   TracklogChannel.configure({ token: 'SharedAccessSignature sr=...' });
 *   TracklogChannel.initLogAnalytics({ conversation: {...} }, correlationId)
 *     .then(function (outcome) { ... });
 *
 * Both calls return promises that resolve to the server's outcome
 * ({accepted, duplicates, rejected}) and reject on a transport error or a
 * non-2xx answer (the error carries `status` and `body`). The token is a
 * provider-scoped SAS token; `endpoint` defaults to this script's origin.
 */
(function (root) {
  'use strict';
  var script = typeof document !== 'undefined' && document.currentScript;
  var settings = {
    endpoint: script && script.src ? new URL(script.src).origin : '',
    token: ''
  };

  function configure(options) {
    if (options && options.endpoint) { settings.endpoint = String(options.endpoint).replace(/\/+$/, ''); }
    if (options && options.token) { settings.token = String(options.token); }
    return { endpoint: settings.endpoint };
  }

  function post(path, body) {
    return fetch(settings.endpoint + path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Authorization': settings.token },
      body: JSON.stringify(body),
      keepalive: true
    }).then(function (response) {
      return response.text().then(function (text) {
        var parsed = null;
        try { parsed = text ? JSON.parse(text) : null; } catch (e) { parsed = { raw: text }; }
        if (!response.ok) {
          var message = parsed && parsed.error ? parsed.error.message : response.statusText;
          var error = new Error('Tracklog answered ' + response.status + ': ' + message);
          error.status = response.status;
          error.body = parsed;
          throw error;
        }
        return parsed;
      });
    });
  }

  function initLogAnalytics(data, correlationId) {
    var body = {};
    for (var key in data) { if (Object.prototype.hasOwnProperty.call(data, key)) { body[key] = data[key]; } }
    if (correlationId !== undefined) { body.correlationId = correlationId; }
    return post('/api/v1/channel/init', body);
  }

  var EVENT_FIELDS = ['kpiEventReason', 'eventTimestamp', 'notificationResponseAction',
    'externalCorrelationId', 'additionalData', 'customData'];

  function logAnalyticsEvent(data, eventName, correlationId) {
    data = data || {};
    var events = data.events;
    if (!events) {
      var single = { kpiEventName: eventName };
      for (var i = 0; i < EVENT_FIELDS.length; i++) {
        if (data[EVENT_FIELDS[i]] !== undefined) { single[EVENT_FIELDS[i]] = data[EVENT_FIELDS[i]]; }
      }
      events = [single];
    }
    var now = new Date().toISOString();
    events = events.map(function (event) {
      var copy = {};
      for (var key in event) { if (Object.prototype.hasOwnProperty.call(event, key)) { copy[key] = event[key]; } }
      if (!copy.kpiEventName) { copy.kpiEventName = eventName; }
      if (!copy.eventTimestamp) { copy.eventTimestamp = now; }
      return copy;
    });
    return post('/api/v1/channel/events', {
      conversationId: data.conversationId,
      providerSessionId: data.providerSessionId,
      clientSessionId: data.clientSessionId,
      participantId: data.participantId,
      correlationId: correlationId,
      events: events
    });
  }

  root.TracklogChannel = {
    configure: configure,
    initLogAnalytics: initLogAnalytics,
    logAnalyticsEvent: logAnalyticsEvent
  };
}(typeof window !== 'undefined' ? window : this));
