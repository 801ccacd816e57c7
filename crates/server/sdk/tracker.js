/* Tracklog browser tracker (/sdk/tracker.js): captures portal interactions
 * and sends them with the portal's public ingest key. See README.md. */
(function (window, document) {
  'use strict';
  var previous = window.tracklog;
  if (previous && previous.version) return; // loaded twice

  var script = document.currentScript || {};
  var data = script.dataset || {};
  var config = window.tracklogConfig || {};
  function option(name) {
    return config[name] != null ? config[name] : data[name];
  }

  var portal = option('portal');
  var key = option('key');
  var host = String(option('host') || (script.src ? new URL(script.src).origin : ''))
    .replace(/\/+$/, '');
  var MAX_ENTRIES = 500; // queue bounds: entries and age
  var MAX_AGE = 7 * 864e5;
  var BATCH = 50; // per request, under the 64 KB keepalive/beacon cap
  var MAX_DELAY = 60000;
  var QUEUE = 'tracklog:queue:' + portal;
  var KINDS = {
    article: ['portal_viewknowledgearticle', 'portal_knowledgearticleid', 'portal_knowledgetitle'],
    blog: ['portal_viewblogpost', 'portal_blogpostid', 'portal_blogtitle'],
    forum: ['portal_viewforumthread', 'portal_forumthreadid', 'portal_forumthreadtitle']
  };

  function storage(name) {
    try {
      var s = window[name];
      s.setItem('tracklog:probe', '1');
      s.removeItem('tracklog:probe');
      return s;
    } catch (e) {
      return null; // storage disabled: memory only
    }
  }
  var local = storage('localStorage');
  var session = storage('sessionStorage');
  var memory = [];

  function uuid() {
    var b = window.crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 15) | 64;
    b[8] = (b[8] & 63) | 128;
    var h = '';
    for (var i = 0; i < 16; i++) h += (b[i] + 256).toString(16).slice(1);
    return h.slice(0, 8) + '-' + h.slice(8, 12) + '-' + h.slice(12, 16) + '-' +
      h.slice(16, 20) + '-' + h.slice(20);
  }

  function remember(name, value) {
    if (session) session.setItem('tracklog:' + name, value);
    return value;
  }
  function recall(name) {
    return session && session.getItem('tracklog:' + name);
  }

  var sessionId = recall('session') || remember('session', uuid());
  var contactId = option('contact') || recall('contact');

  function load() {
    if (!local) return memory;
    try {
      var queue = JSON.parse(local.getItem(QUEUE));
      return Array.isArray(queue) ? queue : [];
    } catch (e) {
      return [];
    }
  }
  function save(queue) {
    var now = Date.now();
    queue = queue.filter(function (event) {
      return now - Date.parse(event.portal_timestamp) < MAX_AGE;
    }).slice(-MAX_ENTRIES);
    if (!local) return (memory = queue);
    try {
      local.setItem(QUEUE, JSON.stringify(queue));
    } catch (e) {
      memory = queue; // storage full
    }
    return queue;
  }

  function track(type, fields) {
    var event = {
      portal_interactionid: uuid(),
      type: type,
      portal_timestamp: new Date().toISOString(),
      portal_portalid: portal,
      session_id: sessionId,
      portal_contactid: contactId || null
    };
    for (var name in fields) {
      if (fields[name] != null && fields[name] !== '') event[name] = fields[name];
    }
    var queue = load();
    queue.push(event);
    save(queue);
    schedule(0);
    return event.portal_interactionid;
  }

  function endpoint() {
    return host + '/api/v1/interactions?key=' + encodeURIComponent(key);
  }

  var sending = false;
  var failures = 0;
  var timer = null;

  function schedule(delay) {
    if (timer) return; // a retry is due already
    timer = setTimeout(function () {
      timer = null;
      flush();
    }, delay);
  }

  function forget(batch) {
    var sent = {};
    batch.forEach(function (event) {
      sent[event.portal_interactionid] = 1;
    });
    save(load().filter(function (event) {
      return !sent[event.portal_interactionid];
    }));
  }

  function flush() {
    if (sending || !key || !window.fetch) return;
    var batch = save(load()).slice(0, BATCH);
    if (!batch.length) return;
    sending = true;
    // text/plain keeps this a simple request: no CORS preflight.
    window.fetch(endpoint(), {
      method: 'POST',
      body: JSON.stringify(batch),
      headers: { 'Content-Type': 'text/plain;charset=UTF-8' },
      credentials: 'omit',
      keepalive: true
    }).then(function (response) {
      var status = response.status;
      // A 2xx has every item's outcome; other 4xx would be refused again.
      if (response.ok || (status >= 400 && status < 500 && status !== 408 && status !== 429)) {
        forget(batch);
        failures = 0;
        sending = false;
        if (load().length) schedule(0);
      } else {
        throw status;
      }
    }).catch(function () {
      sending = false;
      failures++;
      var delay = Math.min(MAX_DELAY, 1000 * Math.pow(2, failures - 1));
      schedule(delay * (0.5 + Math.random() / 2));
    });
  }

  // Hidden pages may never run again. Events stay queued until a 2xx.
  function beacon() {
    var batch = save(load()).slice(0, BATCH);
    if (key && batch.length && navigator.sendBeacon) {
      navigator.sendBeacon(endpoint(),
        new Blob([JSON.stringify(batch)], { type: 'text/plain;charset=UTF-8' }));
    }
  }

  function view(kind, id, title, language) {
    var spec = KINDS[kind];
    var fields = {};
    fields[spec[1]] = id;
    fields[spec[2]] = title;
    if (kind === 'article') fields.language = language;
    return track(spec[0], fields);
  }

  function search(text) {
    text = String(text).trim();
    if (text) return track('portal_search', { portal_searchstring: text });
  }

  // A URL pattern counts only where no element of its kind is marked.
  function scan() {
    var language = document.documentElement.lang;
    Object.keys(KINDS).forEach(function (kind) {
      var attribute = 'data-tracklog-' + kind;
      var marked = document.querySelectorAll('[' + attribute + ']');
      marked.forEach(function (element) {
        if (element.tracklogSeen) return;
        element.tracklogSeen = true;
        view(kind, element.getAttribute(attribute),
          element.getAttribute('data-tracklog-title') || document.title,
          element.getAttribute('data-tracklog-language') || language);
      });
      var pattern = option(kind + 'Pattern');
      var match = !marked.length && pattern && new RegExp(pattern).exec(location.pathname);
      if (match) view(kind, decodeURIComponent(match[1] || match[0]), document.title, language);
    });
    var param = option('searchParam');
    var text = param && new URLSearchParams(location.search).get(param);
    if (text && text !== recall('searched')) search(text);
    remember('searched', '');
  }

  document.addEventListener('submit', function (event) {
    var form = event.target;
    var name = form.getAttribute && form.getAttribute('data-tracklog-search');
    if (name == null) return;
    var input = name ? form.elements[name]
      : form.querySelector('input[type=search],input[name=q],input[type=text]');
    if (input && search(input.value)) remember('searched', input.value.trim());
  }, true);
  document.addEventListener('visibilitychange', function () {
    if (document.visibilityState === 'hidden') beacon();
  });
  window.addEventListener('pagehide', beacon);
  window.addEventListener('online', function () {
    failures = 0;
    flush();
  });

  var tracklog = window.tracklog = {
    version: 1,
    identify: function (id) {
      contactId = remember('contact', id == null ? '' : String(id));
    },
    track: track,
    view: view,
    search: search,
    scan: scan,
    flush: flush,
    push: function (call) {
      tracklog[call[0]].apply(tracklog, call.slice(1));
    }
  };

  function start() {
    scan();
    flush();
  }
  // Calls queued before load: window.tracklog = [['identify', 'c-1']].
  if (Array.isArray(previous)) previous.forEach(tracklog.push);
  // After the page's own scripts, so tracklog.identify() runs first.
  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    setTimeout(start, 0);
  }
})(window, document);
